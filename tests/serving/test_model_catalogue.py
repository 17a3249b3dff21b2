"""A trained model serves a catalogue that has grown past what it was trained on."""

from __future__ import annotations

from tests.serving.test_user_cache import served, tiny_model  # noqa: F401  (fixtures)


def test_more_new_items_than_the_model_was_trained_on_are_served_and_survive_a_restart(served, make_client, tiny_model) -> None:  # noqa: F811
    engine = served.app.state.engine
    trained = len(tiny_model.item_ids_)
    batch = [{"id": f"late-{n}", "title": f"A cooking show, season {n}"} for n in range(trained + 5)]
    assert served.post("/items", json=batch).status_code == 200  # one batch larger than the model's id table
    assert len(engine.catalogue) == trained + len(batch)
    restarted = make_client({"model": tiny_model, "model_metrics": {}})  # encodes the whole catalogue in one batch
    assert restarted.get("/health").json()["items"] == len(engine.catalogue)
    similar = restarted.get("/items/late-3/similar", params={"k": 3})
    assert similar.status_code == 200 and len(similar.json()["items"]) == 3

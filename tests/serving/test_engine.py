"""Engine internals: the model index over an empty store, model swaps during writes, history cache."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
from fastapi.testclient import TestClient

from thaw.data.records import EventRecord, UserRecord, now_utc
from thaw.serving.content import ContentSimilarity
from tests.serving.conftest import CATALOGUE


class ScaledContent(ContentSimilarity):
    """A stand-in trained model with 16-d vectors and no `dim` attribute."""

    name = "scaled"


def ids(response) -> list[str]:
    return [r["id"] for r in response.json()["items"]]


def test_model_over_an_empty_store_indexes_the_first_posted_item(make_client) -> None:
    """Regression: with no items at start the model index was built 1-d, so the first POST /items
    (a 16-d vector) failed with 500."""
    c = make_client({"model": ScaledContent()})
    assert len(c.app.state.engine.catalogue) == 0
    r = c.post("/items", json={"id": "first", "title": "Star wars in deep space"})
    assert r.status_code == 200, r.text
    c.post("/items", json={"id": "second", "title": "Deep space stars"})
    similar = c.get("/items/first/similar", params={"k": 1}).json()["items"]
    assert [(i["id"], i["source"]) for i in similar] == [("second", "model")]
    r = c.post("/recommendations", json={"liked_items": ["first"], "k": 1})
    assert r.status_code == 200 and r.json()["items"][0]["source"] == "model"


def test_writes_during_a_model_swap_reach_the_new_index(make_client) -> None:
    """Items added and deleted while the catalogue is being encoded are replayed before the swap."""
    entered, release = threading.Event(), threading.Event()

    class SlowModel(ScaledContent):
        def encode_items(self, content, item_ids):
            if len(item_ids) > 1:  # the bulk encode of the swap, not a single POST
                entered.set()
                assert release.wait(10)
            return super().encode_items(content, item_ids)

    c = make_client()
    c.post("/items", json=CATALOGUE)
    engine = c.app.state.engine
    swap = threading.Thread(target=engine.set_model, args=(SlowModel(), "slow", {}))
    swap.start()
    assert entered.wait(10)
    c.post("/items", json={"id": "late", "title": "Star wars: the late arrival"})  # does not wait for the swap
    c.delete("/items/cook-1")
    release.set()
    swap.join(10)
    state = engine.model_state
    assert state is not None and state.version == "slow"
    assert len(state.index) == len(CATALOGUE)  # one added, one deleted
    late = engine.catalogue.row("late")
    assert np.allclose(state.index.vectors(np.array([late])), engine.content_index.vectors(np.array([late])))
    assert "late" in ids(c.get("/items/space-1/similar", params={"k": 3}))
    assert "cook-1" not in ids(c.get("/items/cook-2/similar", params={"k": 10}))


def test_history_cache_sees_events_written_by_another_process(client: TestClient) -> None:
    """The cache is keyed by the user's event count and last id, read with the user on every request."""
    engine = client.app.state.engine
    first = ids(client.get("/users/reader/recommendations", params={"k": 2}))
    assert set(first) <= {"love-2", "love-3"}
    client.get("/users/reader/recommendations", params={"k": 2})
    assert engine.people.cache.hits >= 1
    # Another worker (or thaw ingest) writes straight to the store: this engine is not told.
    engine.store.add_events([EventRecord("reader", "cook-1", "purchase", now_utc() + timedelta(seconds=1))] * 3)
    after = ids(client.get("/users/reader/recommendations", params={"k": 3}))
    assert "cook-1" not in after and "cook-2" in after
    # Deleted elsewhere, then re-created with the same id and no history: not the old history.
    engine.store.delete_user("reader")
    assert client.get("/users/reader/recommendations").status_code == 404
    engine.store.upsert_users([UserRecord("reader")])
    again = client.get("/users/reader/recommendations", params={"k": 3}).json()["items"]
    assert {i["source"] for i in again} == {"popularity"}


def test_user_attribute_and_text_changes_count_at_once(client: TestClient) -> None:
    client.post("/users", json={"id": "writer"})
    assert {i["source"] for i in client.get("/users/writer/recommendations").json()["items"]} == {"popularity"}
    client.post("/users", json={"id": "writer", "text": "pasta cooking at home"})
    r = client.get("/users/writer/recommendations", params={"k": 2})
    assert set(ids(r)) == {"cook-1", "cook-2"}


def test_a_replay_that_read_an_item_before_a_local_delete_does_not_bring_it_back(make_client) -> None:
    """Regression: the change-log replay read cook-1, a DELETE ran, then the replay indexed the
    old record, so the deleted item was served again until the next poll."""
    c = make_client(sync_seconds=3600.0)  # this test drives the replay itself
    c.post("/items", json=CATALOGUE)
    engine = c.app.state.engine
    engine.feed.poll()  # its own writes
    engine.store.update_item("cook-1", title="Deep space cooking")  # another worker's write
    read, release = threading.Event(), threading.Event()
    get_items = engine.store.get_items

    def slow_get_items(ids):
        found = get_items(ids)
        if threading.current_thread().name == "replay":
            read.set()
            assert release.wait(10)
        return found

    engine.store.get_items = slow_get_items
    replay = threading.Thread(target=engine.feed.poll, name="replay")
    replay.start()
    assert read.wait(10)
    deleting = threading.Thread(target=lambda: c.delete("/items/cook-1"))
    deleting.start()
    deleting.join(0.3)  # the delete waits for the replay to finish
    release.set()
    replay.join(10)
    deleting.join(10)
    assert "cook-1" not in engine.catalogue
    assert c.get("/items/cook-1/similar").status_code == 404

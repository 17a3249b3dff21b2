"""Deleting a person removes every trace of them, and retraining cannot bring them back."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sqlalchemy import inspect, select, text

from thaw.data.records import EventRecord, ImpressionRecord, ItemRecord, UserRecord
from thaw.data.store import Store, text_hash
from thaw.models.thaw_model import ThawConfig
from thaw.models.two_tower import TwoTowerConfig
from thaw.training.checkpoint import load
from thaw.training.loop import TrainConfig
from thaw.training.train import train_from_store
from tests.serving.conftest import make_client, serve_db_url  # noqa: F401  (fixtures)

VICTIM = "victim-7"
VICTIM_TEXT = "I love obscure cooking shows and late-night jazz"
START = datetime(2024, 1, 1)
CONFIG = ThawConfig(
    model=TwoTowerConfig(hidden=16, attr_dim=4),
    train=TrainConfig(epochs=3, batch_users=8, n_random_negatives=8),
    encoder="hash",
)


def _records(with_victim: bool) -> tuple[list[UserRecord], list[ItemRecord], list[EventRecord]]:
    """A small store; the victim (inserted in the middle) has text, attributes and events."""
    rng = np.random.default_rng(0)
    items = [ItemRecord(f"i{j}", f"item {j} about topic {j % 5}", attributes={"topic": f"t{j % 5}"}) for j in range(30)]
    users, events = [], []
    for u in range(24):
        users.append(UserRecord(f"u{u}", {"age": 20 + u % 7}, f"reader of topic {u % 5}" if u % 3 == 0 else None))
        for n, j in enumerate(rng.choice(30, size=6, replace=False)):
            events.append(EventRecord(f"u{u}", f"i{j}", "click", START + timedelta(hours=u * 10 + n),
                                      idempotency_key=f"u{u}:{j}"))
        if u == 11 and with_victim:
            users.append(UserRecord(VICTIM, {"age": 99, "city": "Nowhere"}, VICTIM_TEXT))
            for n, j in enumerate((0, 3, 29, 17)):
                events.append(EventRecord(VICTIM, f"i{j}", "purchase", START + timedelta(minutes=n),
                                          text="my private review", idempotency_key=f"{VICTIM}:{j}"))
            events.append(EventRecord(VICTIM, "i5", "view", START, generated=True))  # generated feedback
    return users, items, events


def _fill(store: Store, *, with_victim: bool) -> None:
    users, items, events = _records(with_victim)
    store.upsert_items(items)
    store.upsert_users(users)
    store.add_events(events)


def _traces(store: Store, user_pk: int) -> list[str]:
    """Every (table, column) of every table in the database that still mentions the victim."""
    found = []
    wanted = {VICTIM, VICTIM_TEXT, text_hash(VICTIM_TEXT)}
    with store.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            columns = [c["name"] for c in inspect(conn).get_columns(table)]
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, str) and any(w in value for w in wanted):
                        found.append(f"{table}.{column}")
                    if column == "user_id" and value == user_pk:
                        found.append(f"{table}.{column}")
    return found


def test_store_delete_user_leaves_no_trace_in_any_table(store: Store) -> None:
    _fill(store, with_victim=True)
    from thaw.encoders import encode_cached, load_encoder
    from thaw.data.schema import User

    encode_cached(load_encoder("hash"), [VICTIM_TEXT], store)  # the cached vector of their text
    store.add_impressions([ImpressionRecord("i1", 0, "model", "req-1", START, user=VICTIM)])
    with store.engine.connect() as conn:
        pk = conn.execute(select(User.id).where(User.external_id == VICTIM)).scalar_one()
    assert _traces(store, pk)  # the scan sees the victim before the delete
    assert store.stats().generated_events == 1
    assert store.delete_user(VICTIM) is True
    assert _traces(store, pk) == []
    assert store.stats().generated_events == 0


def test_retraining_after_a_delete_equals_never_having_had_the_user(tmp_path: Path) -> None:
    """Membership: the retrained model is bit-for-bit the model of a store that never held the user."""
    with Store(f"sqlite:///{tmp_path / 'had.sqlite'}") as had, Store(f"sqlite:///{tmp_path / 'never.sqlite'}") as never:
        _fill(had, with_victim=True)
        _fill(never, with_victim=False)
        before, _ = train_from_store(had, CONFIG)
        assert VICTIM in before.user_ids_
        assert had.delete_user(VICTIM)
        after, _ = train_from_store(had, CONFIG)
        reference, _ = train_from_store(never, CONFIG)
    assert VICTIM not in after.user_ids_ and VICTIM not in after.user_index_
    assert after.user_ids_ == reference.user_ids_ and after.item_ids_ == reference.item_ids_
    for name, value in reference.model_.state_dict().items():
        assert torch.equal(after.model_.state_dict()[name], value), name
    assert torch.equal(after.item_vectors_, reference.item_vectors_)
    users = np.arange(len(reference.user_ids_))
    history = sp.csr_matrix((len(users), len(reference.item_ids_)), dtype=np.float32)
    np.testing.assert_array_equal(after.score(users, history), reference.score(users, history))


def test_forget_users_erases_the_fitted_model_rows(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'a.sqlite'}") as store:
        _fill(store, with_victim=True)
        model, _ = train_from_store(store, CONFIG)
    row = model.user_ids_.index(VICTIM)
    assert model.forget_users([VICTIM, "nobody"]) == 1
    assert VICTIM not in model.user_ids_ and VICTIM not in model.user_index_
    assert not model.warm_users_[row]
    assert torch.count_nonzero(model.model_.user_id.weight[row]) == 0
    assert model.user_features_.text is None or not model.user_features_.text[row].any()
    assert model.forget_users([VICTIM]) == 0


def test_a_retraining_forgets_users_deleted_while_it_trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from thaw.models.thaw_model import ThawRecommender
    from thaw.serving.retrain import make_trainer

    fit = ThawRecommender.fit

    def fit_then_delete(self: ThawRecommender, *args: object, **kwargs: object) -> ThawRecommender:
        out = fit(self, *args, **kwargs)
        assert VICTIM in out.user_ids_  # the snapshot was read before the delete
        store.delete_user(VICTIM)
        return out

    with Store(f"sqlite:///{tmp_path / 'r.sqlite'}") as store:
        _fill(store, with_victim=True)
        monkeypatch.setattr(ThawRecommender, "fit", fit_then_delete)
        outcome = make_trainer("hash", base_config=CONFIG)(store, lambda progress: None)
    assert VICTIM not in outcome.model.user_ids_ and VICTIM not in outcome.model.user_index_


@pytest.fixture
def served(make_client, serve_db_url: str):  # noqa: F811  (fixture imported above)
    """A server whose live model was trained on a store holding the victim."""
    with Store(serve_db_url) as store:
        _fill(store, with_victim=True)
        model, _ = train_from_store(store, CONFIG)
    return make_client({"model": model})


def test_delete_endpoint_forgets_the_user_everywhere(served) -> None:
    engine = served.app.state.engine
    assert served.get(f"/users/{VICTIM}/recommendations").status_code == 200  # caches history, logs impressions

    def audience() -> list[str]:
        response = served.get("/explore/items/i1/audience", params={"k": 50})
        assert response.status_code == 200, response.text
        return [member["user"] for member in response.json()["users"]]

    assert VICTIM in audience()  # every user's vector is now kept for audiences
    assert VICTIM in engine.people.cache._entries
    model = engine.model_state.model
    assert VICTIM in model.user_index_
    assert served.delete(f"/users/{VICTIM}").status_code == 204
    engine.impressions.flush()
    assert VICTIM not in engine.people.cache._entries
    assert VICTIM not in model.user_index_ and VICTIM not in model.user_ids_
    assert _traces(engine.store, -1) == []  # events, impressions, text vector, user row
    assert VICTIM not in audience()
    assert not list(engine.store.iter_events(user=VICTIM, include_generated=True))
    # Someone new under the same id starts from nothing: the old id embedding is gone.
    assert served.post("/users", json={"id": VICTIM}).status_code == 200
    assert served.post("/users", json={"id": "stranger"}).status_code == 200
    # The delete asked the background thread for a recount of popularity; have it done now, so
    # both lists below see the same counts (it could otherwise land between the two requests).
    engine.refresh_counts()
    first = served.get(f"/users/{VICTIM}/recommendations", params={"k": 10}).json()["items"]
    second = served.get("/users/stranger/recommendations", params={"k": 10}).json()["items"]
    assert [(i["id"], i["source"]) for i in first] == [(i["id"], i["source"]) for i in second]


# ---------------------------------------------------------------------- differentially private training
def test_cli_private_training_reports_and_stores_the_epsilon_spent(tmp_path: Path, sqlite_url: str) -> None:
    import json

    from typer.testing import CliRunner

    from thaw.cli import app

    with Store(sqlite_url) as store:
        _fill(store, with_victim=True)
    out = tmp_path / "private"
    result = CliRunner().invoke(app, [
        "train", "--db", sqlite_url, "--encoder", "hash", "--epochs", "3", "--dp-epsilon", "2", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "differential privacy (user level): epsilon" in result.output
    meta = json.loads((out / "meta.json").read_text())
    spent = meta["history"]["privacy"]
    assert 0 < spent["epsilon"] <= 2.0 * 1.01 and spent["unit"] == "user" and spent["steps"] > 0
    assert meta["model_config"]["user_ids"] is False and meta["model_config"]["item_residual"] is False
    model = load(out)  # of each item id, only the bias coordinate was trained
    assert torch.count_nonzero(model.model_.item_id.weight[:, :-1]) == 0
    assert torch.count_nonzero(model.model_.item_id.weight[:, -1]) > 0
    assert meta["config"]["train"]["dp_epsilon"] == 2.0


def test_private_step_clips_each_users_gradient() -> None:
    """With (almost) no noise, the step's gradient is a mean of per-user gradients of norm <= clip."""
    from thaw.evaluation.harness import fit_data
    from thaw.evaluation.splits import make_split
    from thaw.evaluation.synthetic import synthetic_snapshot
    from thaw.models.thaw_model import ThawRecommender
    from thaw.training.batches import BatchSampler
    from thaw.training.loop import TrainingData
    from thaw.training.private import PrivateTraining, private_config

    snapshot = synthetic_snapshot(n_users=80, n_items=40, seed=5)
    data = fit_data(snapshot, make_split(snapshot, "cold-user", fold=0, n_folds=5, seed=5))
    clip = 1e-3
    train = TrainConfig(epochs=1, batch_users=16, dp_noise_multiplier=1e-9, dp_max_grad_norm=clip)
    config = private_config(ThawConfig(model=CONFIG.model, train=train, encoder="hash"))
    model = ThawRecommender(config).fit(data)  # a fitted network and the features it reads
    train_matrix = data.train.tocsr().astype(np.float32)
    training = TrainingData(train_matrix, model._item_features(data.items), model.user_features_,
                            data.warm_users, data.warm_items)
    sampler = BatchSampler(training.train, training.warm_items, train, np.random.default_rng(0))
    private = PrivateTraining(model.model_, training, train, sampler, None, torch.zeros(train_matrix.shape[1]))
    batch = sampler.batch(sampler.users[:12])
    private.step(batch)
    expected = private.sample_rate * sampler.n_users
    trained = private.params + ([] if private.item_id is None else [private.item_id])
    norm = torch.sqrt(sum((p.grad**2).sum() for p in trained))
    assert 0 < float(norm) * expected <= 12 * clip * 1.001
    assert private.report()["steps"] == 1


def test_private_training_refuses_per_user_ids() -> None:
    from thaw.evaluation.harness import fit_data
    from thaw.evaluation.splits import make_split
    from thaw.evaluation.synthetic import synthetic_snapshot
    from thaw.models.thaw_model import ThawRecommender

    snapshot = synthetic_snapshot(n_users=30, n_items=20, seed=6)
    data = fit_data(snapshot, make_split(snapshot, "cold-user", fold=0, n_folds=5, seed=6))
    config = ThawConfig(model=CONFIG.model, train=TrainConfig(epochs=1, dp_epsilon=1.0), encoder="hash")
    with pytest.raises(ValueError, match="user_ids=False"):
        ThawRecommender(config).fit(data)

"""Serving a trained model, and background retraining with the swap rule."""

from __future__ import annotations

import time

import numpy as np

from thaw.data.dataset import ItemContent, UserContent, build_snapshot
from thaw.encoders import HashEncoder
from thaw.encoders.cache import encode_cached
from thaw.models.base import FitData
from thaw.serving.content import ContentSimilarity
from thaw.serving.models import TrainOutcome
from tests.serving.conftest import CATALOGUE


class ScaledContent(ContentSimilarity):
    """A stand-in trained model: content vectors, under another name."""

    name = "scaled"


def _wait(client, status: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        versions = client.get("/admin/models").json()
        last = versions[-1]
        if last["status"] == status:
            return last
        if last["status"] not in ("training",):
            raise AssertionError(f"expected {status}, got {last}")
        time.sleep(0.02)
    raise AssertionError("training did not finish")


def _seed(c) -> None:
    c.post("/items", json=CATALOGUE)
    c.post("/users", json={"id": "u"})
    c.post("/events", json={"user": "u", "item": "space-1", "type": "purchase"})


def test_better_model_is_swapped_in(make_client) -> None:
    def trainer(store, callback):
        callback({"epoch": 1})
        return TrainOutcome(ScaledContent(), {"recall@20": 0.5})

    c = make_client({"trainer": trainer})
    _seed(c)
    r = c.post("/admin/train")
    assert r.status_code == 202 and r.json()["status"] == "training"
    live = _wait(c, "live")
    assert live["metrics"] == {"recall@20": 0.5} and live["progress"] == {"epoch": 1}
    statuses = [v["status"] for v in c.get("/admin/models").json()]
    assert statuses == ["retired", "live"]
    body = c.get("/users/u/recommendations", params={"k": 3}).json()
    assert body["model_version"] == live["version"]
    assert {i["source"] for i in body["items"]} == {"model"}
    # The swapped-in model also indexes items added afterwards.
    c.post("/items", json={"id": "space-9", "title": "Star wars in deep space again"})
    assert "space-9" in [i["id"] for i in c.get("/users/u/recommendations", params={"k": 2}).json()["items"]]


def test_worse_or_failed_training_never_replaces_the_live_model(make_client) -> None:
    outcomes = iter(
        [
            TrainOutcome(ScaledContent(), {"recall@20": 0.5}),
            TrainOutcome(ScaledContent(), {"recall@20": 0.4}),
            RuntimeError("out of memory"),
            TrainOutcome(ScaledContent(), {"ndcg@20": 0.9}),
        ]
    )

    def trainer(store, callback):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    c = make_client({"trainer": trainer})
    _seed(c)
    c.post("/admin/train")
    first = _wait(c, "live")
    c.post("/admin/train")
    rejected = _wait(c, "rejected")
    assert "worse" in rejected["detail"]
    c.post("/admin/train")
    failed = _wait(c, "failed")
    assert "out of memory" in failed["detail"]
    c.post("/admin/train")
    assert "no recall@20" in _wait(c, "rejected")["detail"]
    assert c.get("/health").json()["model_version"] == first["version"]


def test_evaluate_compares_on_the_same_data(make_client) -> None:
    def evaluate(model):
        return {"recall@20": 0.9 if isinstance(model, ScaledContent) else 0.1}

    c = make_client({"trainer": lambda store, cb: TrainOutcome(ScaledContent(), {}, evaluate=evaluate)})
    _seed(c)
    c.post("/admin/train")
    assert "vs live 0.1000" in _wait(c, "live")["detail"]


def test_busy_training_is_409(make_client) -> None:
    def slow(store, callback):
        time.sleep(0.5)
        return TrainOutcome(ScaledContent(), {"recall@20": 0.1})

    c = make_client({"trainer": slow})
    _seed(c)
    assert c.post("/admin/train").status_code == 202
    assert c.post("/admin/train").status_code == 409
    _wait(c, "live")


def test_real_thaw_model_serves_known_new_and_cold(make_client, tmp_path) -> None:
    """A small ThawRecommender trained on the store serves through the engine as source 'model'."""
    from thaw.data.store import Store
    from thaw.models.thaw_model import ThawConfig, ThawRecommender
    from thaw.models.two_tower import TwoTowerConfig
    from thaw.training.loop import TrainConfig

    url = f"sqlite:///{tmp_path / 'serve.sqlite'}"
    encoder = HashEncoder(dim=16)
    rng = np.random.default_rng(0)
    with Store(url) as store:
        from thaw.data.records import EventRecord, ItemRecord, UserRecord, now_utc

        store.upsert_items([ItemRecord(i["id"], i["title"], None, i["attributes"]) for i in CATALOGUE])
        store.upsert_users([UserRecord(f"u{n}", {"group": "a" if n % 2 else "b"}) for n in range(20)])
        genres = [["space-1", "space-2", "space-3"], ["love-1", "love-2", "love-3"]]
        store.add_events(
            EventRecord(f"u{n}", item, "click", now_utc())
            for n in range(20)
            for item in rng.choice(genres[n % 2], 2, replace=False)
        )
        snapshot = build_snapshot(store)
        vectors = encode_cached(encoder, snapshot.items.documents(), store)
        items = ItemContent(snapshot.items.titles, snapshot.items.texts, snapshot.items.attributes, vectors)
        users = UserContent(snapshot.users.attributes, snapshot.users.texts)
        train = snapshot.matrix()
        data = FitData(train, items, users, np.ones(snapshot.n_users, bool), np.ones(snapshot.n_items, bool))
        config = ThawConfig(TwoTowerConfig(hidden=16, attr_dim=4, key_dim=8), TrainConfig(epochs=2, n_random_negatives=4), encoder="hash")
        model = ThawRecommender(config).fit(data, user_ids=snapshot.user_ids, item_ids=snapshot.item_ids)

    c = make_client({"model": model, "model_metrics": {"recall@20": 0.3}})
    body = c.get("/users/u1/recommendations", params={"k": 3, "explain": "true"}).json()
    assert body["model_version"].startswith("thaw") and len(body["items"]) == 3
    assert {i["source"] for i in body["items"]} == {"model"}
    assert body["items"][0]["reason"]["items"]
    r = c.post("/recommendations", json={"attributes": {"group": "a"}, "k": 3, "explain": True}).json()
    assert {i["source"] for i in r["items"]} == {"model"}
    assert r["items"][0]["reason"]["attributes"] == {"group": "a"}
    c.post("/items", json={"id": "cold-1", "title": "Deep space stars"})
    sims = c.get("/items/cold-1/similar", params={"k": 3}).json()["items"]
    assert len(sims) == 3 and {i["source"] for i in sims} == {"model"}
    assert c.get("/admin/models").json()[0]["metrics"] == {"recall@20": 0.3}


def _tiny_store(url: str) -> None:
    from thaw.data.records import EventRecord, ItemRecord, UserRecord, now_utc
    from thaw.data.store import Store

    rng = np.random.default_rng(0)
    with Store(url) as store:
        store.upsert_items([ItemRecord(i["id"], i["title"], None, i["attributes"]) for i in CATALOGUE])
        store.upsert_users([UserRecord(f"u{n}", {"group": "a" if n % 2 else "b"}) for n in range(40)])
        genres = [["space-1", "space-2", "space-3"], ["love-1", "love-2", "love-3"]]
        store.add_events(
            EventRecord(f"u{n}", str(item), "click", now_utc())
            for n in range(40)
            for item in rng.choice(genres[n % 2], 3, replace=False)
        )


def _tiny_config():
    from thaw.models.thaw_model import ThawConfig
    from thaw.models.two_tower import TwoTowerConfig
    from thaw.training.loop import TrainConfig

    return ThawConfig(
        TwoTowerConfig(hidden=16, attr_dim=4, key_dim=8), TrainConfig(epochs=3, n_random_negatives=4), encoder="hash"
    )


def test_real_retraining_and_checkpoint_round_trip(make_client, tmp_path) -> None:
    """POST /admin/train with the real trainer; the saved version then serves via model_dir."""
    from thaw.serving.retrain import make_trainer

    _tiny_store(f"sqlite:///{tmp_path / 'serve.sqlite'}")
    trainer = make_trainer("hash", base_config=_tiny_config())
    c = make_client({"trainer": trainer}, models_dir=tmp_path / "models")
    assert c.post("/admin/train").status_code == 202
    deadline = time.monotonic() + 120
    while c.get("/admin/models").json()[-1]["status"] == "training":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    version = c.get("/admin/models").json()[-1]
    assert version["status"] in ("live", "rejected"), version
    assert "recall@20" in version["metrics"]
    if version["status"] == "live":
        assert (tmp_path / "models" / version["version"] / "meta.json").is_file()
        c2 = make_client(model_dir=tmp_path / "models" / version["version"])
        live = c2.get("/admin/models").json()[0]
        assert live["origin"] == "checkpoint" and "recall@20" in live["metrics"]
        body = c2.get("/users/u1/recommendations", params={"k": 3}).json()
        assert {i["source"] for i in body["items"]} == {"model"}
    else:
        assert "worse" in version["detail"]


def test_a_model_retrained_on_one_worker_is_adopted_by_the_others(make_client, tmp_path, monkeypatch) -> None:
    """The version is saved under models_dir and its path logged; the other worker loads it."""
    saved: dict[str, ScaledContent] = {}

    def save(path):
        path.mkdir(parents=True)
        saved[str(path)] = ScaledContent()

    def trainer(store, callback):
        return TrainOutcome(ScaledContent(), {"recall@20": 0.5}, save=save)

    monkeypatch.setattr("thaw.serving.models.load_checkpoint", lambda path: (saved[str(path)], {"recall@20": 0.5}))
    a = make_client({"trainer": trainer}, models_dir=tmp_path / "models", workers=2)
    b = make_client(models_dir=tmp_path / "models", workers=2)
    _seed(a)
    a.post("/admin/train")
    version = _wait(a, "live")["version"]
    deadline = time.monotonic() + 5

    def live_versions() -> list[dict]:
        return [v for v in b.get("/admin/models").json() if v["status"] == "live"]

    # The engine swaps the model in, then the registry lists it: wait for both.
    while b.get("/health").json()["model_version"] != version or [v["version"] for v in live_versions()] != [version]:
        assert time.monotonic() < deadline, "the other worker did not adopt the new model"
        time.sleep(0.02)
    live = live_versions()
    assert [v["version"] for v in live] == [version] and "another worker" in live[0]["detail"]
    body = b.get("/users/u/recommendations", params={"k": 3}).json()
    assert body["model_version"] == version and {i["source"] for i in body["items"]} == {"model"}
    time.sleep(0.2)  # a's own log row is not adopted again
    assert [v["status"] for v in a.get("/admin/models").json()] == ["retired", "live"]

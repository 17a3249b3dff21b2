"""Checkpoints round-trip exactly; `train_from_store` and `thaw train` work end to end on a store."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from thaw.cli import app
from thaw.data.dataset import EventWeights, ItemContent, build_snapshot
from thaw.data.datasets import write_records
from thaw.data.records import EventRecord, ItemRecord, UserRecord
from thaw.data.store import Store, text_hash
from thaw.evaluation.harness import fit_data
from thaw.evaluation.splits import make_split
from thaw.evaluation.synthetic import synthetic_snapshot
from thaw.models.thaw_model import ThawConfig, ThawRecommender
from thaw.models.two_tower import TwoTowerConfig
from thaw.training.checkpoint import CheckpointError, load, save
from thaw.training.loop import TrainConfig
from thaw.training.train import Holdout, snapshot_fit_data, train_from_store

SMALL = {"epochs": 2, "batch_users": 16, "n_random_negatives": 16}


def _config(**train: object) -> ThawConfig:
    return ThawConfig(model=TwoTowerConfig(hidden=16, attr_dim=4),
                      train=TrainConfig(**(SMALL | train)), encoder="hash")


def test_checkpoint_round_trip_gives_identical_scores_and_vectors(tmp_path: Path) -> None:
    snapshot = synthetic_snapshot(n_users=40, n_items=60, seed=1)
    split = make_split(snapshot, "cold-user", fold=0, n_folds=5, seed=1)
    data = fit_data(snapshot, split)
    model = ThawRecommender(_config()).fit(data, user_ids=snapshot.user_ids, item_ids=snapshot.item_ids)
    folder = save(model, tmp_path / "ckpt")
    loaded = load(folder)
    users = np.arange(snapshot.n_users)
    np.testing.assert_array_equal(model.score(users, data.train), loaded.score(users, data.train))
    items = model.encode_items(snapshot.items, snapshot.item_ids)
    np.testing.assert_array_equal(items, loaded.encode_items(snapshot.items, snapshot.item_ids))
    history = sp.csr_matrix(([1.0], ([0], [2])), shape=(1, snapshot.n_items), dtype=np.float32)
    newcomer = dataclasses.replace(snapshot.users, attributes=[{"topic": "t2"}], texts=[None])
    np.testing.assert_array_equal(
        model.encode_users(newcomer, ["new"], history, items), loaded.encode_users(newcomer, ["new"], history, items)
    )
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["encoder"] == "hash" and meta["thaw_version"]
    assert meta["item_ids"] == snapshot.item_ids and meta["history"]["epochs"]
    assert loaded.config_ == model.config_


def test_load_rejects_what_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing"):
        load(tmp_path)
    (tmp_path / "meta.json").write_text('{"format": 99}')
    (tmp_path / "tensors.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="format"):
        load(tmp_path)


def _fill(store: Store) -> None:
    from datetime import datetime

    snapshot = synthetic_snapshot(n_users=50, n_items=70, seed=2)
    users = [UserRecord(u, a) for u, a in zip(snapshot.user_ids, snapshot.users.attributes, strict=True)]
    items = [ItemRecord(i, t, attributes=a) for i, t, a in
             zip(snapshot.item_ids, snapshot.items.titles, snapshot.items.attributes, strict=True)]
    events = [
        EventRecord(snapshot.user_ids[u], snapshot.item_ids[i], "purchase", datetime(2024, 1, 1), idempotency_key=f"{u}:{i}")
        for u, i in zip(snapshot.events.user, snapshot.events.item, strict=True)
    ]
    write_records(store, users, items, events)


def test_train_from_store_caches_texts_and_holds_out_validation(store: Store) -> None:
    _fill(store)
    reports = []
    model, history = train_from_store(store, _config(), callback=reports.append)
    assert [r.epoch for r in reports] == list(range(1, len(reports) + 1)) and reports
    assert history is model.history_ and history.best_metric is not None
    assert {"cold-item", "warm"} <= set(history.epochs[0]["views"])
    title = build_snapshot(store).items.documents()[0]
    assert store.get_embeddings("hash-16", [text_hash(title)])  # encoded once, cached in the store
    # Held-out pairs are not trained on: the training matrix has fewer pairs than the store.
    data = snapshot_fit_data(build_snapshot(store), EventWeights(), Holdout())
    assert data.validation is not None and data.validation.nnz > 0
    assert not data.train.multiply(data.validation).nnz
    assert (~data.warm_items).sum() > 0
    # The training pairs' events come along, times included: first interactions are known.
    events = data.train_events
    assert events is not None and len(events)
    pairs = sp.csr_matrix((np.ones(len(events)), (events.user, events.item)), shape=data.train.shape)
    assert ((pairs > 0) != (data.train > 0)).nnz == 0  # exactly the training pairs
    every = build_snapshot(store).events
    assert len(events) < len(every) and set(events.time.tolist()) <= set(every.time.tolist())


def test_cli_train_writes_a_loadable_checkpoint(tmp_path: Path, sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        _fill(store)
    config = tmp_path / "thaw.toml"
    config.write_text("[model]\nhidden = 16\n\n[train]\nbatch_users = 16\nn_random_negatives = 16\n")
    out = tmp_path / "model"
    result = CliRunner().invoke(
        app, ["train", "--db", sqlite_url, "--config", str(config), "--encoder", "hash", "--epochs", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "checkpoint written" in result.output
    loaded = load(out)
    weights = loaded.model_config_.prior_weights
    assert f"new-user popularity prior: weight {weights[0]:g} without history" in " ".join(result.output.split())
    assert loaded.model_config_.hidden == 16 and loaded.config_.train.epochs == 2
    vectors = loaded.encode_items(ItemContent(["galaxy notes"], [None], [{}]), ["brand-new"])
    assert vectors.shape == (1, loaded.dim) and np.isfinite(vectors).all()
    bad = CliRunner().invoke(app, ["train", "--db", sqlite_url, "--config", str(tmp_path / "nope.toml"), "--out", str(out)])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def test_tfidf_text_encoder_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    snapshot = synthetic_snapshot(n_users=40, n_items=60, seed=3)
    data = fit_data(snapshot, make_split(snapshot, "cold-item", fold=0, n_folds=5, seed=3))
    config = dataclasses.replace(_config(), encoder="tfidf")
    model = ThawRecommender(config).fit(data, user_ids=snapshot.user_ids, item_ids=snapshot.item_ids)
    assert model.text_encoder_ is not None and model.model_config_.text_dim == model.text_encoder_.dim
    loaded = load(save(model, tmp_path / "tfidf"))
    new = ItemContent(["galaxy theory notes"], [None], [{"shelf": "s1"}])
    np.testing.assert_array_equal(model.encode_items(new, ["x"]), loaded.encode_items(new, ["x"]))


def test_registry_factory_routes_options() -> None:
    from thaw.models.thaw_model import create

    model = create(seed=7, epochs=3, hidden=8, encoder="tfidf")
    assert model.config is not None
    assert model.config.train.seed == 7 and model.config.train.epochs == 3
    assert model.config.model.hidden == 8 and model.config.encoder == "tfidf"
    with pytest.raises(ValueError, match="unknown thaw options"):
        create(epochz=3)

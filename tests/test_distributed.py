"""Distributed training: real gloo processes on loopback, through torchrun, end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from thaw.cli import app
from thaw.data.store import Store
from thaw.evaluation.harness import fit_data
from thaw.evaluation.splits import make_split
from thaw.evaluation.synthetic import synthetic_snapshot
from thaw.models.thaw_model import ThawConfig
from thaw.models.two_tower import TwoTowerConfig
from thaw.training.batches import BatchSampler
from thaw.training.checkpoint import load
from thaw.training.distributed import DistributedThawRecommender, Parallel, launch, train_distributed
from thaw.training.loop import TrainConfig

sys.path.insert(0, str(Path(__file__).parent / "training"))
from test_checkpoint import _fill  # noqa: E402  (the store filler the single-process CLI test uses)

SMALL = {"epochs": 3, "batch_users": 16, "n_random_negatives": 16}


def _config() -> ThawConfig:
    return ThawConfig(model=TwoTowerConfig(hidden=16, attr_dim=4), train=TrainConfig(**SMALL), encoder="hash")


def test_shards_cover_every_user_once_per_epoch_and_differ_between_processes() -> None:
    train = sp.random(45, 30, density=0.3, format="csr", random_state=0, dtype=np.float32)
    train.data[:] = 1.0
    train.sort_indices()
    config = TrainConfig(batch_users=8)
    shards = []
    for rank in range(2):
        sampler = BatchSampler(train, np.ones(30, bool), config, np.random.default_rng(0))
        epoch = Parallel(rank, 2, seed=3).batches(sampler)
        shards.append([b.users for b in epoch()])
    assert len(shards[0]) == len(shards[1])  # every process takes part in every step
    for first, second in zip(*shards, strict=True):
        assert abs(len(first) - len(second)) <= 1 and not set(first) & set(second)
    seen = np.concatenate([u for shard in shards for u in shard])
    assert sorted(seen) == sorted(np.flatnonzero(np.diff(train.indptr) > 0))


def test_cli_trains_on_two_processes_and_writes_a_valid_checkpoint(tmp_path: Path, sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        _fill(store)
    config = tmp_path / "thaw.toml"
    config.write_text("[model]\nhidden = 16\nattr_dim = 4\n\n[train]\nbatch_users = 16\nn_random_negatives = 16\n")
    out = tmp_path / "model"
    result = CliRunner().invoke(app, [
        "train", "--db", sqlite_url, "--config", str(config), "--encoder", "hash", "--epochs", "3",
        "--nproc", "2", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "trained on 2 processes" in result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["history"]["world_size"] == 2 and len(meta["history"]["epochs"]) == 4  # epoch 0 + 3
    assert all(np.isfinite(e["loss"]) for e in meta["history"]["epochs"][1:])
    model = load(out)
    with Store(sqlite_url) as store:
        assert model.user_ids_ == [u.id for u in store.iter_users()]
    scores = model.score(np.arange(3), sp.csr_matrix((3, len(model.item_ids_)), dtype=np.float32))
    assert scores.shape == (3, len(model.item_ids_)) and np.isfinite(scores).all()


@pytest.mark.slow  # two 2-process fits
def test_two_process_fit_is_deterministic_and_learns(tmp_path: Path) -> None:
    snapshot = synthetic_snapshot(n_users=60, n_items=50, seed=4)
    data = fit_data(snapshot, make_split(snapshot, "cold-user", fold=0, n_folds=5, seed=4))
    first = DistributedThawRecommender(_config(), nproc=2).fit(data)
    second = DistributedThawRecommender(_config(), nproc=2).fit(data)
    users = np.arange(snapshot.n_users)
    np.testing.assert_array_equal(first.score(users, data.train), second.score(users, data.train))
    history = first.history_
    assert history.world_size == 2 and history.best_epoch > 0
    assert history.best_metric > history.epochs[0]["val"]  # training beat the untrained content model


def test_a_failing_worker_fails_the_launch_with_its_status(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="torchrun exited with status"):
        launch(["--db", f"sqlite:///{tmp_path / 'missing' / 'x.sqlite'}", "--out", str(tmp_path / "m")], 2)


def test_private_training_is_refused_before_any_process_starts(tmp_path: Path) -> None:
    config = ThawConfig(train=TrainConfig(dp_epsilon=1.0))
    with pytest.raises(ValueError, match="one process"):
        train_distributed(f"sqlite:///{tmp_path / 'x.sqlite'}", config, tmp_path / "m", 2)

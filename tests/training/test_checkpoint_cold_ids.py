"""A checkpoint keeps borrowed id parts: cold items score the same after load, sources survive."""

from __future__ import annotations

import numpy as np
import pytest

from thaw.evaluation.harness import fit_data
from thaw.evaluation.splits import make_split
from thaw.evaluation.synthetic import synthetic_snapshot
from thaw.models.thaw_model import ThawConfig, ThawRecommender
from thaw.models.two_tower import TwoTowerConfig
from thaw.training import checkpoint, neighbor_ids
from thaw.training.loop import TrainConfig


def test_borrowed_id_parts_and_their_sources_survive_save_and_load(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neighbor_ids, "WEIGHTS", (1.0,))
    snapshot = synthetic_snapshot(n_users=60, n_items=80, seed=5)
    data = fit_data(snapshot, make_split(snapshot, "cold-item", fold=0, n_folds=5, seed=5))
    config = ThawConfig(
        model=TwoTowerConfig(hidden=16, attr_dim=4, id_dim=8),
        train=TrainConfig(epochs=1, batch_users=16, n_random_negatives=16, cold_id_neighbors=3), encoder="hash",
    )
    model = ThawRecommender(config).fit(data, user_ids=snapshot.user_ids, item_ids=snapshot.item_ids)
    model.id_sources_ = data.warm_items.copy()  # what the model's fit records (see docs/cold-item-ids.md)
    users = np.flatnonzero(data.warm_users)[:10]
    before = model.score(users, data.train.tocsr()[users])
    loaded = checkpoint.load(checkpoint.save(model, tmp_path / "ckpt"))
    assert np.array_equal(loaded.id_sources_, data.warm_items)
    assert loaded.history_.cold_ids == model.history_.cold_ids
    assert loaded.warm_items_[~data.warm_items].all()  # cold items own their borrowed part
    assert np.allclose(loaded.score(users, data.train.tocsr()[users]), before, atol=1e-5)

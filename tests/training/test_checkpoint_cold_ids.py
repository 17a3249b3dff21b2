"""A checkpoint keeps borrowed id parts: cold items score the same after load, sources survive, and
items added after training borrow as the cold items did."""

from __future__ import annotations

import numpy as np
import pytest

from thaw.data.dataset import ItemContent
from thaw.evaluation.harness import fit_data
from thaw.evaluation.splits import make_split
from thaw.evaluation.synthetic import synthetic_snapshot
from thaw.models.thaw_model import ThawConfig, ThawRecommender
from thaw.models.two_tower import TwoTowerConfig
from thaw.training import checkpoint, neighbor_ids
from thaw.training.loop import TrainConfig


@pytest.fixture
def borrowing(monkeypatch: pytest.MonkeyPatch):
    """(snapshot, fit data, a model fitted with cold_id_neighbors = 3 and the borrowing weight 1)."""
    monkeypatch.setattr(neighbor_ids, "WEIGHTS", (1.0,))
    snapshot = synthetic_snapshot(n_users=60, n_items=80, seed=5)
    data = fit_data(snapshot, make_split(snapshot, "cold-item", fold=0, n_folds=5, seed=5))
    config = ThawConfig(
        model=TwoTowerConfig(hidden=16, attr_dim=4, id_dim=8),
        train=TrainConfig(epochs=1, batch_users=16, n_random_negatives=16, cold_id_neighbors=3), encoder="hash",
    )
    return snapshot, data, ThawRecommender(config).fit(data, user_ids=snapshot.user_ids, item_ids=snapshot.item_ids)


def test_borrowed_id_parts_and_their_sources_survive_save_and_load(tmp_path, borrowing) -> None:
    _, data, model = borrowing
    model.id_sources_ = data.warm_items.copy()  # what the model's fit records (see docs/cold-item-ids.md)
    users = np.flatnonzero(data.warm_users)[:10]
    before = model.score(users, data.train.tocsr()[users])
    loaded = checkpoint.load(checkpoint.save(model, tmp_path / "ckpt"))
    assert np.array_equal(loaded.id_sources_, data.warm_items)
    assert loaded.history_.cold_ids == model.history_.cold_ids
    assert loaded.warm_items_[~data.warm_items].all()  # cold items own their borrowed part
    assert np.allclose(loaded.score(users, data.train.tocsr()[users]), before, atol=1e-5)



def test_an_item_added_after_training_is_encoded_as_a_cold_item_was(tmp_path, borrowing) -> None:
    snapshot, data, model = borrowing
    cold = np.flatnonzero(~data.warm_items)
    items = data.items
    content = ItemContent([items.titles[i] for i in cold], [items.texts[i] for i in cold],
                          [items.attributes[i] for i in cold],
                          None if items.text_vectors is None else items.text_vectors[cold])
    known = model.encode_items(content, [snapshot.item_ids[i] for i in cold])
    width = model.model_.width + 1
    for fitted in (model, checkpoint.load(checkpoint.save(model, tmp_path / "ckpt"))):
        new = fitted.encode_items(content, [f"new-{snapshot.item_ids[i]}" for i in cold])
        assert np.allclose(new[:, :width], known[:, :width], atol=1e-5)  # same borrowed id part
        assert np.abs(new[:, model.model_.dim : width - 1]).sum() > 0

"""Borrowed id parts: cold items take the neighbour-weighted id rows of warm items, kept on validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thaw.evaluation.harness import fit_data
from thaw.evaluation.splits import make_split
from thaw.evaluation.synthetic import synthetic_snapshot
from thaw.models.thaw_model import ThawConfig, ThawRecommender
from thaw.models.two_tower import TwoTowerConfig
from thaw.training import neighbor_ids
from thaw.training.loop import TrainConfig

SMALL = {"epochs": 2, "batch_users": 16, "n_random_negatives": 16}


def test_neighbor_weights_pick_the_most_similar_references_and_sum_to_one() -> None:
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]], np.float32)
    query = np.array([[2.0, 0.1], [0.0, 0.0]], np.float32)
    index, weights = neighbor_ids.neighbor_weights(query, reference, k=2, temperature=0.1)
    assert set(index[0]) == {0, 2}  # cosines 0.999 and 0.74; the others are lower
    top = index[0][np.argmax(weights[0])]
    assert top == 0
    assert weights[0].sum() == pytest.approx(1.0)
    # softmax(cos / t) by hand
    cos = np.array([2.0 / np.hypot(2.0, 0.1), 2.1 / (np.hypot(2.0, 0.1) * np.sqrt(2.0))])
    expected = np.exp(cos / 0.1) / np.exp(cos / 0.1).sum()
    assert sorted(weights[0]) == pytest.approx(sorted(expected), rel=1e-5)
    assert np.all(weights[1] == 0.0)  # no content: borrows nothing


def test_neighbor_weights_cap_k_at_the_number_of_references() -> None:
    index, weights = neighbor_ids.neighbor_weights(np.ones((3, 2), np.float32), np.eye(2, dtype=np.float32), 5, 1.0)
    assert index.shape == weights.shape == (3, 2)
    assert np.allclose(weights.sum(axis=1), 1.0)


def test_borrowed_rows_with_one_neighbour_copy_the_nearest_row() -> None:
    rows = torch.arange(12, dtype=torch.float32).view(3, 4)
    source = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], np.float32)
    out = neighbor_ids.borrowed_rows(rows, source, np.array([[0.1, 3.0], [-2.0, -1.5]], np.float32), 1, 0.1)
    assert torch.equal(out, rows[[1, 2]])


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="cold_id_neighbors"):
        TrainConfig(cold_id_neighbors=-1)
    with pytest.raises(ValueError, match="cold_id_temperature"):
        TrainConfig(cold_id_temperature=0.0)


def _fit(weights: tuple[float, ...], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(neighbor_ids, "WEIGHTS", weights)
    snapshot = synthetic_snapshot(n_users=60, n_items=80, seed=5)
    data = fit_data(snapshot, make_split(snapshot, "cold-item", fold=0, n_folds=5, seed=5))
    config = ThawConfig(
        model=TwoTowerConfig(hidden=16, attr_dim=4, id_dim=8),
        train=TrainConfig(**SMALL, cold_id_neighbors=3), encoder="hash",
    )
    return data, ThawRecommender(config).fit(data, user_ids=snapshot.user_ids, item_ids=snapshot.item_ids)


def test_a_tie_on_validation_keeps_cold_items_without_borrowed_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    # The synthetic catalogue is easy: every weight ranks the validation items first (a tie).
    data, model = _fit((0.0, 1.0, 2.0), monkeypatch)
    info = model.history_.cold_ids
    assert info["curve"] == {"0.0": 1.0, "1.0": 1.0, "2.0": 1.0}
    assert info["weight"] == 0.0 and info["relative_weight"] == 0.0
    cold = np.flatnonzero(~data.warm_items)
    assert torch.all(model.model_.item_id.weight.detach()[torch.from_numpy(cold)] == 0)
    assert not model.warm_items_[cold].any()


def test_cold_items_hold_the_weighted_neighbour_rows_validation_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    data, model = _fit((1.0,), monkeypatch)  # the only choice: borrowing at relative weight 1
    info = model.history_.cold_ids
    assert info["neighbors"] == 3 and info["relative_weight"] == 1.0 and info["scale"] > 0
    assert info["weight"] == pytest.approx(info["scale"])
    cold = np.flatnonzero(~data.warm_items)
    table = model.model_.item_id.weight.detach()
    warm = np.flatnonzero(data.warm_items)
    # Recompute one cold item's borrowed row from the fitted model's content vectors.
    content = model.item_vectors_[:, : model.model_.dim].numpy()
    expected = neighbor_ids.borrowed_rows(table[torch.from_numpy(warm)], content[warm], content[cold[:1]], 3, 0.1)
    assert torch.allclose(table[cold[0]], info["weight"] * expected[0], atol=1e-5)
    assert model.warm_items_[cold].all()  # scoring now adds their id part


def test_off_by_default_leaves_cold_items_without_an_id_part() -> None:
    snapshot = synthetic_snapshot(n_users=40, n_items=50, seed=3)
    data = fit_data(snapshot, make_split(snapshot, "cold-item", fold=0, n_folds=5, seed=3))
    config = ThawConfig(model=TwoTowerConfig(hidden=16, attr_dim=4), train=TrainConfig(**SMALL), encoder="hash")
    model = ThawRecommender(config).fit(data)
    assert model.history_.cold_ids is None
    assert not model.warm_items_[~data.warm_items].any()


def test_a_new_item_at_serving_borrows_what_a_cold_item_got_at_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    data, model = _fit((1.0,), monkeypatch)
    cold = np.flatnonzero(~data.warm_items)
    network = model.model_
    fitted = model.item_vectors_[:, : network.width + 1]  # [content | ids | bias] (no later columns)
    content = fitted[torch.from_numpy(cold)].clone()
    content[:, network.dim : network.width] = 0.0  # the content-only vectors (id block off)
    content[:, -1] -= network.item_id.weight.detach()[torch.from_numpy(cold), -1]  # and no id bias
    part = neighbor_ids.borrowed_part(network, content, fitted, data.warm_items, model.history_.cold_ids)
    assert torch.allclose(content + part, fitted[torch.from_numpy(cold)], atol=1e-5)
    off = neighbor_ids.borrowed_part(network, content, fitted, data.warm_items, None)
    assert torch.all(off == 0)


def test_generated_feedback_starts_from_the_borrowed_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from thaw.training import feedback

    data, model = _fit((1.0,), monkeypatch)
    network = model.model_
    cold = torch.from_numpy(np.flatnonzero(~data.warm_items))
    borrowed = network.item_id.weight.detach()[cold].clone()
    assert borrowed.abs().sum() > 0
    training = _training_data(model, data)
    config = dataclasses.replace(model.config_.train, generated_feedback=2, feedback_epochs=1, feedback_lr=1e-12)
    fed = feedback.generate(network, training, 2, config)
    feedback.warm_up(network, training, fed, config, keep_rows=True)
    assert torch.allclose(network.item_id.weight.detach()[cold], borrowed, atol=1e-6)  # moved from there
    feedback.warm_up(network, training, fed, config)  # the default starts the rows at zero
    assert torch.allclose(network.item_id.weight.detach()[cold], torch.zeros_like(borrowed), atol=1e-6)


def _training_data(model: ThawRecommender, data):
    from thaw.training.loop import TrainingData

    train = data.train.tocsr().astype(np.float32)
    train.sort_indices()
    return TrainingData(train=train, items=model._item_features(data.items), users=model._user_features(data.users),
                        warm_users=data.warm_users, warm_items=data.warm_items, validation=data.validation)

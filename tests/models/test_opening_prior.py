"""The adaptive prior: a history of newcomers' usual first picks weighs popularity more than one
of items a user chose for themselves (models/priors.py)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from thaw.cli.train import _prior_line
from thaw.data.dataset import UserContent, snapshot_from_records
from thaw.data.records import EventRecord
from thaw.encoders import HashEncoder
from thaw.evaluation.harness import fit_data
from thaw.evaluation.splits import make_split
from thaw.evaluation.synthetic import synthetic_records
from thaw.models.priors import WEIGHT_GRID, openness, opening_shares, first_interactions, user_weights
from thaw.models.thaw_model import ThawRecommender
from thaw.models.two_tower import TwoTowerConfig
from thaw.training.checkpoint import load, save

from tests.models.test_priors import _with_prior
from tests.models.test_two_tower import DIM, _config

CAROUSEL = 5  # items 0-4: what every synthetic newcomer is shown (and rates) first


def _carousel_fit_data():
    """Synthetic users whose first 3 interactions are 3 of the carousel's 5 items, an hour before
    their own picks: first interactions say little, later ones say much."""
    users, items, events = synthetic_records(n_users=80, n_items=60, interactions_per_user=10, seed=1)
    rng = np.random.default_rng(1)
    first_of = {}
    for event in events:
        first_of[event.user] = min(first_of.get(event.user, event.timestamp), event.timestamp)
    chosen = {(e.user, e.item) for e in events}
    for user, start in first_of.items():
        for j, item in enumerate(rng.choice(CAROUSEL, 3, replace=False)):
            if (user, f"i{item}") not in chosen:
                events.append(EventRecord(user, f"i{item}", "purchase", start - timedelta(hours=1, minutes=-j)))
    snapshot = snapshot_from_records(users, items, events)
    split = make_split(snapshot, "onboarding-3", fold=0, n_folds=5, seed=0)
    data = fit_data(snapshot, split)
    vectors = HashEncoder(dim=DIM).encode(snapshot.items.documents())
    return dataclasses.replace(data, items=dataclasses.replace(data.items, text_vectors=vectors)), snapshot


def test_openness_places_a_history_between_random_and_first_picks() -> None:
    shares = np.array([0.5, 0.5, 0.05, 0.05, 0.0])
    history = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 1, 1, 0], [1, 0, 1, 0, 0], [0, 0, 0, 0, 0],
                                      [2, 0, 0, 0, 0]], np.float32))
    np.testing.assert_allclose(openness(history, shares, (0.05, 0.5)), [1.0, 0.0, 0.5, 0.0, 1.0])
    opening = openness(history, shares, (0.05, 0.5))
    weights = user_weights(np.zeros(5, bool), np.array([2, 2, 2, 0, 1]), (1.0, 4.0, 0.5), opening)
    np.testing.assert_allclose(weights, [4.0, 0.5, 2.25, 1.0, 4.0])
    assert user_weights(np.ones(1, bool), np.array([2]), (1.0, 4.0, 0.5), np.ones(1))[0] == 0.0  # warm users


def test_opening_shares_count_each_items_first_picks_among_its_users() -> None:
    train = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 0, 1, 1], [0, 1, 1, 1]], np.float32))
    times = np.array([1, 2, 3, 5, 4, 1, 9, 8, 7], np.int64)  # per entry, row by row
    firsts = first_interactions(train, times, 1, np.random.default_rng(0))
    np.testing.assert_array_equal(firsts.toarray(), [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]])
    np.testing.assert_allclose(opening_shares(train, firsts), np.array([1, 0, 0, 2]) / (np.array([2, 2, 3, 2]) + 10.0),
                               rtol=1e-6)


def test_the_fit_adapts_when_first_picks_are_the_same_few_items() -> None:
    data, snapshot = _carousel_fit_data()
    model = ThawRecommender(_config()).fit(data, item_ids=snapshot.item_ids, user_ids=snapshot.user_ids)
    config = model.model_config_
    assert config.opening_range is not None and len(config.prior_weights) == 3
    assert all(w in WEIGHT_GRID for w in config.prior_weights)
    assert set(model.prior_curves_) == {"no-history", "onboarding", "chosen history"}
    assert model.dim == model.model_.width + 3
    shares = model.item_vectors_[:, -1].numpy()
    carousel = [snapshot.item_ids.index(f"i{i}") for i in range(CAROUSEL)]
    others = np.setdiff1d(np.arange(data.n_items), carousel)
    assert shares[carousel].min() > 2 * shares[others].max()

    # Served vectors: the weight follows the history, the score stays one dot product.
    items = model.encode_items(snapshot.items, snapshot.item_ids)
    np.testing.assert_allclose(items, model.item_vectors_.numpy(), rtol=1e-5, atol=1e-5)
    cold = int(np.flatnonzero(~data.warm_users)[0])
    content = UserContent([snapshot.users.attributes[cold]], [None])
    low, high = config.opening_range
    for picks in (carousel[:3], list(others[:3])):
        row = sp.csr_matrix((np.ones(3, np.float32), ([0, 0, 0], picks)), shape=(1, data.n_items))
        vector = model.encode_users(content, [snapshot.user_ids[cold]], row, items)
        assert vector[0, -1] == 0.0  # users hold 0 against the shares
        t = float(np.clip((shares[picks].mean() - low) / (high - low), 0, 1))
        expected = config.prior_weights[2] + (config.prior_weights[1] - config.prior_weights[2]) * t
        assert vector[0, -2] == pytest.approx(expected, abs=1e-5)
        np.testing.assert_allclose(vector @ items.T, model.score(np.array([cold]), row), rtol=1e-4, atol=1e-4)
    new_items = model.encode_items(snapshot.items, [f"new-{i}" for i in snapshot.item_ids])
    assert np.all(new_items[:, -2:] == 0.0)  # an item added after training: no popularity, no share


def test_fixed_or_given_weights_and_a_checkpoint_keep_the_adaptation(tmp_path: Path) -> None:
    data, _ = _carousel_fit_data()
    fixed = ThawRecommender(_with_prior(_config(), adaptive_prior=False)).fit(data)
    assert fixed.model_config_.opening_range is None and len(fixed.model_config_.prior_weights) == 2
    assert fixed.dim == fixed.model_.width + 2
    given = ThawRecommender(_with_prior(_config(), prior_weights=(1.0, 4.0, 0.5))).fit(data)
    assert given.model_config_.prior_weights == (1.0, 4.0, 0.5) and given.model_config_.opening_range is not None
    assert given.prior_curves_ == {}
    assert "4 for newcomers' usual first picks down to 0.5 for a user's own" in _prior_line(given)
    assert _prior_line(fixed).startswith("new-user popularity prior: weight")
    loaded = load(save(given, tmp_path / "model"))
    assert loaded.model_config_ == given.model_config_ and loaded.dim == given.dim
    users = np.flatnonzero(~data.warm_users)[:4]
    history = sp.csr_matrix(data.train[np.flatnonzero(data.warm_users)[:4]])
    np.testing.assert_allclose(loaded.score(users, history), given.score(users, history), rtol=1e-6)


def test_opening_range_is_checked() -> None:
    with pytest.raises(ValueError, match="opening_range"):
        TwoTowerConfig(opening_range=(0.3, 0.2))
    with pytest.raises(ValueError, match="prior_weights"):
        TwoTowerConfig(prior_weights=(1.0, 2.0, 3.0, 4.0))

"""The new-user popularity prior: its arrays, and what it does to thaw's scores and vectors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from thaw.data.dataset import UserContent
from thaw.models.priors import WEIGHT_GRID, best_weight, log_popularity, simulated_new_users, user_weights
from thaw.models.thaw_model import ThawConfig, ThawRecommender
from thaw.models.two_tower import TwoTowerConfig
from thaw.training.checkpoint import load, save

from tests.models.test_two_tower import _config, _small_fit_data


def _with_prior(config: ThawConfig, **model: object) -> ThawConfig:
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **model))  # type: ignore[arg-type]


def test_log_popularity_counts_distinct_users_once_each() -> None:
    train = sp.csr_matrix(np.array([[3.0, 0, 1], [1, 0, 0], [2, 0, 0]], np.float32))  # strengths, not counts
    np.testing.assert_allclose(log_popularity(train), np.log1p([3, 0, 1]).astype(np.float32))


def test_user_weights_are_zero_for_warm_users_and_split_new_users_by_history() -> None:
    has_id = np.array([True, True, False, False, False])
    n_history = np.array([0, 4, 0, 1, 30])
    np.testing.assert_array_equal(user_weights(has_id, n_history, (1.5, 4.0)), [0.0, 0.0, 1.5, 4.0, 4.0])


def test_simulated_newcomers_reveal_their_first_items_and_keep_the_rest_to_find() -> None:
    train = sp.csr_matrix(np.array([[1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0], [0, 1, 1, 1, 0, 1]], np.float32))
    times = np.array([50, 10, 40, 20, 30, 5, 6, 9, 7, 8, 6], np.int64)  # per entry, row by row
    validation = sp.csr_matrix(([1.0], ([0], [5])), shape=train.shape)
    users, revealed, rest = simulated_new_users(train, validation, times, k=2, seed=0)
    np.testing.assert_array_equal(users, [0, 2])  # user 1 has no more than k items
    np.testing.assert_array_equal(revealed.toarray(), [[0, 1, 0, 1, 0, 0], [0, 0, 1, 0, 0, 1]])
    np.testing.assert_array_equal(rest.toarray(), [[1, 0, 1, 0, 1, 1], [0, 1, 0, 1, 0, 0]])
    few, _, _ = simulated_new_users(train, None, times, k=2, max_users=1, seed=3)
    assert len(few) == 1 and few[0] in (0, 2)


def test_best_weight_follows_whether_popularity_predicts_what_users_like() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 30
    prior = np.arange(n_items, dtype=np.float64)  # item 29 the most popular
    scores = rng.normal(size=(n_users, n_items))
    nothing = sp.csr_matrix((n_users, n_items))
    popular = sp.csr_matrix(np.tile(np.arange(n_items) >= n_items - 5, (n_users, 1)).astype(np.float32))
    weight, curve = best_weight(iter([(scores, nothing, popular)]), prior, k=5, metric="recall")
    assert weight >= 2.0 and curve[weight] > 0.95 and curve[0.0] < 0.5
    assert set(curve) == set(WEIGHT_GRID)
    rare = sp.csr_matrix(np.tile(np.arange(n_items) < 5, (n_users, 1)).astype(np.float32))
    assert best_weight(iter([(scores, nothing, rare)]), prior, k=5, metric="ndcg")[0] == 0.0
    halves = [(scores[:20], nothing[:20], popular[:20]), (scores[20:], nothing[20:], popular[20:])]
    chunked, chunked_curve = best_weight(iter(halves), prior, k=5, metric="recall")
    assert chunked == weight and chunked_curve == pytest.approx(curve)  # chunking changes nothing


def test_fit_chooses_the_weights_on_replayed_training_users() -> None:
    data, _ = _small_fit_data("onboarding-3")
    model = ThawRecommender(_config()).fit(data)
    chosen = model.model_config_.prior_weights
    assert chosen is not None and all(w in WEIGHT_GRID for w in chosen)
    assert set(model.prior_curves_) == {"no-history", "onboarding"}
    assert model.model_config_.opening_range is None  # random first picks: nothing to adapt to
    for name, weight in zip(("no-history", "onboarding"), chosen):
        curve = model.prior_curves_[name]
        assert curve[weight] == max(curve.values())
    fixed = ThawRecommender(_with_prior(_config(), prior_weights=(0.5, 0.5))).fit(data)
    assert fixed.model_config_.prior_weights == (0.5, 0.5) and fixed.prior_curves_ == {}


def test_new_users_gain_weighted_log_popularity_and_warm_users_are_unchanged() -> None:
    data, _ = _small_fit_data("onboarding-3")
    config = _with_prior(_config(), prior_weights=(1.5, 3.0))
    with_prior = ThawRecommender(config).fit(data)
    without = ThawRecommender(_with_prior(config, popularity_prior=False)).fit(data)  # same training
    popularity = np.log1p(np.asarray((data.train > 0).sum(axis=0)).ravel())
    assert with_prior.dim == without.dim + 1 == with_prior.model_.width + 2
    np.testing.assert_allclose(with_prior.item_vectors_[:, -1].numpy(), popularity, rtol=1e-6)

    warm = np.flatnonzero(data.warm_users)[:4]
    cold = np.flatnonzero(~data.warm_users)[:4]
    assert len(warm) and len(cold)
    np.testing.assert_allclose(
        with_prior.score(warm, data.train[warm]), without.score(warm, data.train[warm]), rtol=1e-5, atol=1e-5
    )
    empty = sp.csr_matrix((len(cold), data.n_items), dtype=np.float32)
    gain = with_prior.score(cold, empty) - without.score(cold, empty)
    np.testing.assert_allclose(gain, np.tile(1.5 * popularity, (len(cold), 1)), rtol=1e-4, atol=1e-4)
    revealed = sp.csr_matrix((np.ones(len(cold), np.float32), (np.arange(len(cold)), np.zeros(len(cold), int))),
                             shape=empty.shape)
    gain = with_prior.score(cold, revealed) - without.score(cold, revealed)
    np.testing.assert_allclose(gain, np.tile(3.0 * popularity, (len(cold), 1)), rtol=1e-4, atol=1e-4)


def test_serving_vectors_carry_the_prior_as_a_dot_product() -> None:
    data, snapshot = _small_fit_data("cold-user")
    model = ThawRecommender(_config()).fit(data, item_ids=snapshot.item_ids, user_ids=snapshot.user_ids)
    items = model.encode_items(snapshot.items, snapshot.item_ids)
    np.testing.assert_allclose(items, model.item_vectors_.numpy(), rtol=1e-5, atol=1e-5)
    fresh = model.encode_items(snapshot.items, [f"new-{i}" for i in snapshot.item_ids])
    assert np.all(fresh[:, -1] == 0.0)  # an item added after training has no popularity yet

    cold = int(np.flatnonzero(~data.warm_users)[0])
    content = UserContent([snapshot.users.attributes[cold]], [None])
    n = data.n_items
    history = sp.csr_matrix(([1.0, 1.0], ([0, 0], [2, 5])), shape=(1, n), dtype=np.float32)
    for row in (sp.csr_matrix((1, n), dtype=np.float32), history):
        vector = model.encode_users(content, [snapshot.user_ids[cold]], row, items)
        assert vector.shape == (1, model.dim)
        assert vector[0, -1] == model.model_config_.prior_weights[1 if row.nnz else 0]
        np.testing.assert_allclose(vector @ items.T, model.score(np.array([cold]), row), rtol=1e-4, atol=1e-4)
    warm = int(np.flatnonzero(data.warm_users)[0])
    known = model.encode_users(
        UserContent([snapshot.users.attributes[warm]], [None]), [snapshot.user_ids[warm]], data.train[warm], items
    )
    assert known[0, -1] == 0.0  # a user with an id part scores as without the prior


def test_checkpoint_keeps_the_prior_and_its_weights(tmp_path: Path) -> None:
    data, _ = _small_fit_data("cold-user")
    model = ThawRecommender(_with_prior(_config(), prior_weights=(0.5, 2.0))).fit(data)
    loaded = load(save(model, tmp_path / "model"))
    assert loaded.model_config_.prior_weights == (0.5, 2.0) and loaded.dim == model.dim
    users = np.flatnonzero(~data.warm_users)[:3]
    history = sp.csr_matrix((len(users), data.n_items), dtype=np.float32)
    np.testing.assert_allclose(loaded.score(users, history), model.score(users, history), rtol=1e-6)


def test_prior_settings_round_trip_and_reject_bad_weights() -> None:
    config = _with_prior(_config(), prior_weights=(0.25, 6.0))
    values = config.to_dict()
    values["model"]["prior_weights"] = list(values["model"]["prior_weights"])  # as JSON gives it back
    assert ThawConfig.from_dict(values) == config
    with pytest.raises(ValueError, match="prior_weights"):
        TwoTowerConfig(prior_weights=(1.0,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prior_weights"):
        TwoTowerConfig(prior_weights=(1.0, -2.0))

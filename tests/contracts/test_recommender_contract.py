"""One suite every registered Recommender passes (parametrised over the registry)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from thaw.encoders import HashEncoder
from thaw.evaluation.content import with_text_vectors
from thaw.evaluation.harness import fit_data
from thaw.evaluation.splits import make_split
from thaw.evaluation.synthetic import synthetic_snapshot
from thaw.models.base import Recommender
from thaw.models.registry import available, create

FAST = {"seed": {"max_epochs": 2, "n_val_users": 50}, "thaw": {"epochs": 2}}


@pytest.fixture(scope="module")
def setting():
    # Text vectors from the deterministic stand-in encoder, as `--encoder hash` would give.
    snapshot = with_text_vectors(
        synthetic_snapshot(n_users=60, n_items=90, interactions_per_user=8, seed=2), HashEncoder(dim=16)
    )
    split = make_split(snapshot, "cold-both", fold=0)
    return snapshot, split, fit_data(snapshot, split, seed=0)


def _make(name: str, seed: int = 0) -> Recommender:
    return create(name, seed=seed, **FAST.get(name, {}))


def _users(split):
    warm = np.flatnonzero(split.warm_users)[:5]
    cold = np.flatnonzero(split.cold_users)[:5]
    return warm, cold


@pytest.mark.parametrize("name", available())
def test_fit_returns_self_and_follows_the_protocol(name: str, setting) -> None:
    _, _, data = setting
    model = _make(name)
    assert model.fit(data) is model
    assert isinstance(model, Recommender)
    assert isinstance(model.name, str) and model.name


@pytest.mark.parametrize("name", available())
def test_scores_have_the_contract_shape_for_warm_cold_and_onboarding_users(name: str, setting) -> None:
    _, split, data = setting
    model = _make(name).fit(data)
    warm, cold = _users(split)
    for users, history in (
        (warm, data.train[warm]),
        (cold, sp.csr_matrix((len(cold), data.n_items), dtype=np.float32)),  # brand-new users
        (cold, data.train[warm]),  # onboarding: a few interactions, no retraining
    ):
        scores = np.asarray(model.score(users, history))
        assert scores.shape == (len(users), data.n_items)
        assert np.isfinite(scores).all()


@pytest.mark.parametrize("name", available())
def test_same_seed_same_scores_and_refit_equals_fit(name: str, setting) -> None:
    _, split, data = setting
    warm, _ = _users(split)
    a = _make(name, seed=5).fit(data).score(warm, data.train[warm])
    b = _make(name, seed=5).fit(data).score(warm, data.train[warm])
    np.testing.assert_array_equal(a, b)
    twice = _make(name, seed=5).fit(data).fit(data).score(warm, data.train[warm])
    np.testing.assert_allclose(a, twice, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", available())
def test_scores_do_not_depend_on_batching(name: str, setting) -> None:
    _, split, data = setting
    model = _make(name).fit(data)
    users = np.flatnonzero(split.warm_users)[:6]
    together = model.score(users, data.train[users])
    alone = np.vstack([model.score(users[i : i + 1], data.train[users[i : i + 1]]) for i in range(len(users))])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", available())
def test_fit_does_not_change_its_input(name: str, setting) -> None:
    _, _, data = setting
    before = data.train.copy()
    _make(name).fit(data)
    assert (data.train != before).nnz == 0

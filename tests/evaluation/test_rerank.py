"""Exposure re-ranking: identity at strength 0, lists stay permutations, cold share rises with λ."""

from __future__ import annotations

import json
import math
from typing import Self

import numpy as np
import pytest
import scipy.sparse as sp

from thaw.evaluation.harness import evaluate_fold, fit_data, run
from thaw.evaluation.report import report_json
from thaw.evaluation.splits import make_split
from thaw.models.base import FitData
from thaw.models.registry import create
from thaw.models.rerank import ExposureReranker, RerankSpec, boost_cold, reserve_cold_slots

N_USERS, N_ITEMS, K = 40, 60, 10


@pytest.fixture(scope="module")
def case() -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
    """Scores where warm items lead (so lists start warm), a history, and a cold mask."""
    rng = np.random.default_rng(11)
    cold = rng.random(N_ITEMS) < 0.3
    scores = rng.normal(size=(N_USERS, N_ITEMS)) + 1.5 * ~cold  # warm items ahead on average
    scores[:, :4] = 0.25  # a few tied items, so the tie-break paths run too
    history = sp.random(N_USERS, N_ITEMS, density=0.1, format="csr", random_state=3, dtype=np.float32)
    return scores, history, cold


def _top(scores: np.ndarray, history: sp.csr_matrix, k: int = K) -> list[list[int]]:
    """Each user's top k non-history items by (score desc, item asc): what a ranker would show."""
    out = []
    for row in range(scores.shape[0]):
        seen = set(history[row].indices.tolist())
        free = [i for i in range(scores.shape[1]) if i not in seen]
        out.append(sorted(free, key=lambda i: (-scores[row, i], i))[:k])
    return out


def _rerank(method: str, strength: float, case) -> np.ndarray:
    scores, history, cold = case
    if method == "cold-boost":
        return boost_cold(scores, history, cold, strength)
    return reserve_cold_slots(scores, history, cold, strength, K, users=np.arange(N_USERS), seed=0)


@pytest.mark.parametrize("method", ["cold-boost", "cold-share"])
def test_strength_zero_is_identity(method: str, snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=0)
    data = fit_data(snapshot, split)
    inner = create("content-knn").fit(data)
    wrapped = ExposureReranker(inner, method, 0.0, prefit=True).fit(data)
    users = np.arange(20)
    history = data.train[users]
    assert np.array_equal(wrapped.score(users, history), inner.score(users, history))


@pytest.mark.parametrize("method,strength", [("cold-boost", 0.7), ("cold-boost", 3.0),
                                             ("cold-share", 0.3), ("cold-share", 1.0)])
def test_lists_stay_permutations_and_group_orders_hold(method: str, strength: float, case) -> None:
    scores, history, cold = case
    new = _rerank(method, strength, case)
    before, after = _top(scores, history, N_ITEMS), _top(new, history, N_ITEMS)
    for row in range(N_USERS):
        # The full ranking is a permutation of the same non-history items.
        assert sorted(after[row]) == sorted(before[row]) and len(set(after[row])) == len(after[row])
        # The model's order among cold items and among warm items is kept (up to tied scores).
        for group in (cold, ~cold):
            shown = [i for i in after[row] if group[i]]
            assert np.all(np.diff(scores[row, shown]) <= 0)


@pytest.mark.parametrize("method,grid", [("cold-boost", [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]),
                                         ("cold-share", [0.0, 0.1, 0.2, 0.5, 0.8, 1.0])])
def test_cold_share_rises_monotonically(method: str, grid: list[float], case) -> None:
    scores, history, cold = case
    counts = []
    for strength in grid:
        top = _top(_rerank(method, strength, case), history)
        counts.append(np.array([cold[t].sum() for t in top]))
    for lower, higher in zip(counts, counts[1:]):
        assert (higher >= lower).all()  # per user, not only on average
    assert counts[-1].sum() > counts[0].sum()


def test_cold_share_is_guaranteed(case) -> None:
    scores, history, cold = case
    for share in (0.2, 0.35, 1.0):
        top = _top(_rerank("cold-share", share, case), history)
        for row, items in enumerate(top):
            seen = set(history[row].indices.tolist())
            n_cold_free = sum(1 for i in np.flatnonzero(cold) if i not in seen)
            assert cold[items].sum() >= min(math.ceil(share * K - 1e-9), n_cold_free)
    # Without ties: the new list is the model's list minus its lowest-ranked warm items, then
    # the best cold items it lacked, in the model's order.
    rng = np.random.default_rng(5)
    distinct = rng.normal(size=(N_USERS, N_ITEMS)) + 1.5 * ~cold
    new = reserve_cold_slots(distinct, history, cold, 0.5, K, users=np.arange(N_USERS))
    for row in range(N_USERS):
        old = _top(distinct[row : row + 1], history[row])[0]
        ranked = _top(distinct[row : row + 1], history[row], N_ITEMS)[0]
        got = _top(new[row : row + 1], history[row])[0]
        n_cold = int(cold[old].sum())
        if n_cold >= 5:
            assert got == old
            continue
        best_cold = [i for i in ranked if cold[i]][:5]
        old_warm = [i for i in old if not cold[i]]
        kept = [i for i in old if cold[i] or i in old_warm[: K - 5]]
        assert got == kept + [i for i in best_cold if i not in old]


def test_boost_is_per_user_standardised(case) -> None:
    scores, history, cold = case
    boosted = boost_cold(scores, history, cold, 0.0)
    free = np.ones_like(scores, bool)
    coo = history.tocoo()
    free[coo.row, coo.col] = False
    for row in range(N_USERS):
        values = boosted[row, free[row]]
        assert values.mean() == pytest.approx(0, abs=1e-9) and values.std() == pytest.approx(1)
    # Scaling or shifting a user's scores does not change what the boost does.
    affine = boost_cold(3 * scores + 7, history, cold, 1.2)
    assert np.allclose(affine, boost_cold(scores, history, cold, 1.2))


class TieModel:
    """Scores every cold item 0 (like ALS's zero vectors): the cold-share tie-break must choose."""

    name = "ties"

    def fit(self, data: FitData) -> Self:
        self.warm_ = data.warm_items
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.where(self.warm_, 1.0 + np.arange(len(self.warm_)) / 1e4, 0.0)[None, :].repeat(len(users), 0)


def test_cold_share_tiebreak_is_seeded_per_user(snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=0)
    data = fit_data(snapshot, split)
    a = ExposureReranker(TieModel(), "cold-share", 0.5, seed=1).fit(data)
    b = ExposureReranker(TieModel(), "cold-share", 0.5, seed=1).fit(data)
    users, history = np.arange(6), data.train[:6]
    first = a.score(users, history)
    assert np.array_equal(first, b.score(users, history))  # same seed, same lists
    lifted = [set(np.flatnonzero(first[r] > 2).tolist()) for r in range(6)]
    assert all(len(s) == 20 for s in lifted)
    assert len({frozenset(s) for s in lifted}) > 1  # users get different cold picks, not item-id order


def test_harness_rerank_raises_overall_cold_exposure_only(snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=2)
    data = fit_data(snapshot, split)
    inner = create("content-knn").fit(data)
    plain = evaluate_fold(inner, snapshot, split, data=data)
    shares = []
    for strength in (0.0, 0.5, 1.0, 2.0):
        boosted = ExposureReranker(inner, "cold-boost", strength, prefit=True).fit(data)
        result = evaluate_fold(boosted, snapshot, split, data=data)
        shares.append(result.rankings["overall"].aggregate["cold_exposure@20"])
        for name in ("cold", "warm"):  # one group only: the boost cannot change these rankings
            for metric, values in plain.rankings[name].per_user.items():
                assert np.allclose(values, result.rankings[name].per_user[metric]), (name, metric)
    assert shares == sorted(shares) and shares[-1] > shares[0]


def test_spec_parsing() -> None:
    assert RerankSpec.parse("cold-boost=1.5") == RerankSpec("cold-boost", 1.5, 20)
    assert RerankSpec.parse("cold-share=0.2, k=10") == RerankSpec("cold-share", 0.2, 10)
    assert RerankSpec.parse("cold-share=0.2,k=10").label == "cold-share=0.2,k=10"
    assert RerankSpec.parse("cold-share") == RerankSpec("cold-share", 0.1, 20)  # the validated default
    assert RerankSpec.parse("cold-share,k=10") == RerankSpec("cold-share", 0.1, 10)
    for bad, message in [("cold-boost", "METHOD=STRENGTH"), ("warm-boost=1", "one of"),
                         ("cold-boost=-1", ">= 0"), ("cold-share=1.5", r"\[0, 1\]"),
                         ("cold-share=0.2,n=3", "only k"), ("cold-boost=lots", "not a number")]:
        with pytest.raises(ValueError, match=message):
            RerankSpec.parse(bad)


def test_registry_and_run_take_a_rerank_option(snapshot) -> None:
    wrapped = create("popularity", rerank="cold-share=0.2")
    assert isinstance(wrapped, ExposureReranker) and wrapped.name == "popularity+cold-share=0.2"
    assert not isinstance(create("popularity", rerank="none"), ExposureReranker)
    plain = run(["popularity"], snapshot, "cold-item", folds=1)
    report = run(["popularity"], snapshot, "cold-item", folds=1, rerank="cold-share=0.25")
    doc = json.loads(json.dumps(report_json(report)))
    assert doc["rerank"] == "cold-share=0.25" and doc["results"][0]["model"] == "popularity"
    before = plain.summary("popularity", "overall")["cold_exposure@20"]["mean"]
    after = report.summary("popularity", "overall")["cold_exposure@20"]["mean"]
    assert before == 0.0 and after >= 0.25  # popularity never shows a cold item by itself
    assert report_json(plain)["rerank"] is None

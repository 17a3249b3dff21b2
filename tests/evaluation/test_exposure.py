"""Exposure metrics: hand-computed Gini and popularity, and the harness agrees with brute force."""

from __future__ import annotations

import math
from typing import Self

import numpy as np
import pytest
import scipy.sparse as sp

from thaw.evaluation.harness import evaluate_fold, fit_data, scoring_history, training_popularity
from thaw.evaluation.metrics import gini, mean_popularity, recommendation_gini
from thaw.evaluation.ranking import rankings_for, tiebreak_keys
from thaw.evaluation.splits import make_split
from thaw.models.base import FitData


def test_gini_golden() -> None:
    # Sorted counts 0, 0, 1, 3: Σ (2j - n - 1) c_j = -3*0 - 1*0 + 1*1 + 3*3 = 10; n Σc = 4*4 = 16.
    assert gini(np.array([3, 0, 1, 0])) == pytest.approx(10 / 16)
    # The same from the mean absolute difference: Σ_ij |c_i - c_j| / (2 n^2 mean) = 20 / 32.
    assert gini(np.array([0, 0, 1, 3])) == pytest.approx(20 / 32)
    assert gini(np.array([5, 5, 5])) == 0.0  # evenly recommended
    assert gini(np.array([0, 0, 0, 7])) == pytest.approx(3 / 4)  # all on one item: (n - 1) / n
    assert gini(np.array([1, 2])) == pytest.approx(1 / 6)  # (-1*1 + 1*2) / (2*3)
    assert math.isnan(gini(np.zeros(3)))
    with pytest.raises(ValueError, match="non-negative"):
        gini(np.array([1, -1]))


def test_recommendation_gini_counts_unrecommended_candidates() -> None:
    lists = [np.array([0, 1]), np.array([0, 2])]
    # Counts over 5 candidates: 2, 1, 1, 0, 0 -> sorted 0, 0, 1, 1, 2; weights -4, -2, 0, 2, 4.
    assert recommendation_gini(lists, np.ones(5, bool)) == pytest.approx((2 * 1 + 4 * 2) / (5 * 4))
    # Only items 0-2 are candidates: counts 2, 1, 1 -> (-2*1 + 0*1 + 2*2) / (3*4).
    candidates = np.array([True, True, True, False, False])
    assert recommendation_gini(lists, candidates) == pytest.approx(2 / 12)
    with pytest.raises(ValueError, match="outside the candidates"):
        recommendation_gini([np.array([4])], candidates)


def test_mean_popularity_golden() -> None:
    popularity = np.array([0.5, 0.25, 0.0, 1.0])
    lists = [np.array([0, 3]), np.array([2, 3, 1])]
    assert mean_popularity(lists, popularity) == pytest.approx((0.5 + 1 + 0 + 1 + 0.25) / 5)
    assert math.isnan(mean_popularity([], popularity))


def test_training_popularity_is_share_of_warm_users() -> None:
    train = sp.csr_matrix(np.array([[1, 1, 0], [0, 2, 0], [0, 0, 0], [0, 1, 0]], np.float32))
    # Three warm users (rows 0, 1, 3); item 1 has all three, item 0 one, item 2 none.
    assert training_popularity(train).tolist() == pytest.approx([1 / 3, 1.0, 0.0])


class FixedScores:
    """Seeded distinct scores, warm items ahead on average: a model whose lists mix both."""

    name = "fixed"

    def __init__(self, seed: int = 0, warm_bonus: float = 0.5) -> None:
        self.seed, self.warm_bonus = seed, warm_bonus

    def fit(self, data: FitData) -> Self:
        rng = np.random.default_rng(self.seed)
        self.table_ = rng.random((data.n_users, data.n_items)) + self.warm_bonus * data.warm_items
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return self.table_[users]


def test_harness_list_metrics_match_brute_force(snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=1)
    data = fit_data(snapshot, split)
    model = FixedScores(seed=4, warm_bonus=0.05).fit(data)
    result = evaluate_fold(model, snapshot, split, ks=(5, 20), data=data)
    history = scoring_history(snapshot, split, data)
    popularity = training_popularity(data.train)
    for name, ranking in rankings_for(split).items():
        users = np.unique(ranking.test.user)
        keys = tiebreak_keys(users, split.n_items, split.seed, split.fold)
        lists, cold_hits, warm_hits = [], [], []
        for row, u in enumerate(users):
            seen = set(history[u].indices.tolist())
            order = sorted((i for i in np.flatnonzero(ranking.candidates) if i not in seen),
                           key=lambda i: (-model.table_[u, i], keys[row, i]))
            relevant = ranking.test.item[ranking.test.user == u]
            lists.append(np.array(order[:5]))
            cold_rel = [i for i in relevant if ranking.cold_items[i]]
            warm_rel = [i for i in relevant if not ranking.cold_items[i]]
            if cold_rel:
                cold_hits.append(len(set(cold_rel) & set(order[:5])) / len(cold_rel))
            if warm_rel:
                warm_hits.append(len(set(warm_rel) & set(order[:5])) / len(warm_rel))
        agg = result.rankings[name].aggregate
        counts = np.bincount(np.concatenate(lists), minlength=split.n_items)[ranking.candidates]
        assert agg["gini@5"] == pytest.approx(gini(counts))
        assert agg["cold_exposure@5"] == pytest.approx(np.mean(ranking.cold_items[np.concatenate(lists)]))
        assert agg["mean_popularity@5"] == pytest.approx(np.mean(popularity[np.concatenate(lists)]))
        assert 0 <= agg["gini@20"] < 1
        if name == "overall":
            assert agg["cold_recall@5"] == pytest.approx(np.mean(cold_hits))
            assert agg["warm_recall@5"] == pytest.approx(np.mean(warm_hits))
            assert 0 < agg["cold_exposure@5"] < 1  # this ranking mixes cold and warm items
        else:
            assert "cold_recall@5" not in agg
    assert result.rankings["cold"].aggregate["mean_popularity@20"] == 0.0  # cold items have none
    assert result.rankings["cold"].aggregate["cold_exposure@20"] == 1.0


def test_evaluate_fold_can_keep_some_rankings(snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=0)
    data = fit_data(snapshot, split)
    model = FixedScores().fit(data)
    everything = evaluate_fold(model, snapshot, split, data=data)
    only = evaluate_fold(model, snapshot, split, data=data, rankings=["overall"])
    assert list(only.rankings) == ["overall"]
    assert only.rankings["overall"].aggregate == everything.rankings["overall"].aggregate
    with pytest.raises(ValueError, match="subset"):
        evaluate_fold(model, snapshot, split, data=data, rankings=["lukewarm"])


def test_tradeoff_plot_writes_a_png(tmp_path) -> None:
    from thaw.evaluation.plots import exposure_tradeoff

    points = [
        {"dataset": d, "model": "m", "method": method, "strength": s, "recall@20": 0.1 - s / 50,
         "warm_recall@20": 0.2 - s / 20, "cold_exposure@20": 0.1 + s / 10, "gini@20": 0.8 - s / 30}
        for d in ("a", "b") for method in ("cold-boost", "cold-share") for s in (0.0, 0.5, 1.0)
    ]
    path = exposure_tradeoff(points, tmp_path / "t.png", marked=[points[1]])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

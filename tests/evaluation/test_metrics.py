"""Metrics: hand-computed golden values, and the batched path agrees with the per-user one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thaw.evaluation.metrics import (
    auc,
    coverage,
    exposure_share,
    hit_rate_at_k,
    metric_names,
    metrics_from_ranks,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
)

# Ranking of 6 candidates, best first; items 1, 5 and 7 are relevant (at ranks 2, 4 and 6).
RANKED = np.array([3, 1, 4, 5, 9, 7])
RELEVANT = {1, 5, 7}


def test_recall_golden() -> None:
    assert recall_at_k(RANKED, RELEVANT, 1) == 0.0
    assert recall_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, RELEVANT, 50) == 1.0  # hits / |relevant|, not / min(|rel|, k)


def test_precision_and_hit_rate_golden() -> None:
    assert precision_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 2)
    assert precision_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 5)
    assert precision_at_k(RANKED, RELEVANT, 10) == pytest.approx(3 / 10)  # divides by k
    assert hit_rate_at_k(RANKED, RELEVANT, 1) == 0.0
    assert hit_rate_at_k(RANKED, RELEVANT, 2) == 1.0


def test_ndcg_golden() -> None:
    # k=5: DCG = 1/log2(3) + 1/log2(5); IDCG over min(3, 5) = 3 positions.
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(0.498190, abs=1e-6)
    # k=2: IDCG over min(3, 2) = 2 positions.
    assert ndcg_at_k(RANKED, RELEVANT, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k([1, 5, 7, 3], RELEVANT, 3) == pytest.approx(1.0)


def test_mrr_and_auc_golden() -> None:
    assert reciprocal_rank(RANKED, RELEVANT) == pytest.approx(1 / 2)
    # Negatives 3, 4, 9. Item 1 beats 4 and 9; item 5 beats 9; item 7 beats none: 3 of 9 pairs.
    assert auc(RANKED, RELEVANT) == pytest.approx(3 / 9)
    assert auc([1, 5, 7, 3, 4], RELEVANT) == 1.0
    assert auc([3, 4, 1], {1}) == 0.0
    assert auc([1, 5], {1, 5}) == 1.0  # no negatives


def test_coverage_and_exposure_golden() -> None:
    lists = [np.array([0, 1, 2]), np.array([2, 3, 4])]
    assert coverage(lists, 10) == pytest.approx(5 / 10)
    cold = np.zeros(10, bool)
    cold[[2, 4]] = True
    assert exposure_share(lists, cold) == pytest.approx(3 / 6)  # item 2 twice, item 4 once


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(RANKED, RELEVANT, 0)
    with pytest.raises(ValueError, match="relevant"):
        recall_at_k(RANKED, set(), 5)
    with pytest.raises(ValueError, match="at least one relevant"):
        metrics_from_ranks([np.array([], np.int64)], np.array([5]), (5,))
    with pytest.raises(ValueError, match="more relevant"):
        metrics_from_ranks([np.array([1, 2, 3])], np.array([2]), (5,))


def test_metrics_from_ranks_golden() -> None:
    out = metrics_from_ranks([np.array([2, 4, 6])], np.array([6]), ks=(2, 5))
    assert out["recall@2"][0] == pytest.approx(1 / 3)
    assert out["recall@5"][0] == pytest.approx(2 / 3)
    assert out["ndcg@5"][0] == pytest.approx(ndcg_at_k(RANKED, RELEVANT, 5))
    assert out["mrr"][0] == pytest.approx(0.5)
    assert out["auc"][0] == pytest.approx(3 / 9)
    assert set(out) == set(metric_names((2, 5)))


def test_batched_metrics_match_per_user_functions() -> None:
    rng = np.random.default_rng(7)
    ks = (1, 3, 10)
    ranks, n_cands, rankings, relevants = [], [], [], []
    for _ in range(300):
        n = int(rng.integers(1, 40))
        ranked = rng.permutation(1000)[:n]
        n_rel = int(rng.integers(1, n + 1))
        rel = set(rng.choice(ranked, n_rel, replace=False).tolist())
        rankings.append(ranked)
        relevants.append(rel)
        ranks.append(np.flatnonzero(np.isin(ranked, list(rel))) + 1)
        n_cands.append(n)
    out = metrics_from_ranks(ranks, np.array(n_cands), ks)
    for u, (ranked, rel) in enumerate(zip(rankings, relevants)):
        for k in ks:
            assert out[f"recall@{k}"][u] == pytest.approx(recall_at_k(ranked, rel, k))
            assert out[f"ndcg@{k}"][u] == pytest.approx(ndcg_at_k(ranked, rel, k))
            assert out[f"precision@{k}"][u] == pytest.approx(precision_at_k(ranked, rel, k))
            assert out[f"hitrate@{k}"][u] == pytest.approx(hit_rate_at_k(ranked, rel, k))
        assert out["mrr"][u] == pytest.approx(reciprocal_rank(ranked, rel))
        assert out["auc"][u] == pytest.approx(auc(ranked, rel))

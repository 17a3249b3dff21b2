"""The exact index and top-k: growth while read, removal, exclusion, deterministic ties."""

from __future__ import annotations

import numpy as np
import pytest

from thaw.serving.index import ExactIndex, VectorIndex, padded_scores, top_k


def test_search_matches_brute_force_and_grows() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 8)).astype(np.float32)
    index = ExactIndex(8, capacity=4)
    assert isinstance(index, VectorIndex)
    index.add(np.arange(1000), vectors[:1000])
    index.add(np.arange(1000, 3000), vectors[1000:])
    query = rng.normal(size=8).astype(np.float32)
    rows, scores = index.search(query, 5)
    expected = np.argsort(-(vectors @ query))[:5]
    assert rows[0].tolist() == expected.tolist()
    assert np.allclose(scores[0], (vectors @ query)[expected], atol=1e-5)
    assert len(index) == 3000


def test_remove_and_exclude() -> None:
    index = ExactIndex(2)
    index.add(np.arange(4), np.array([[1, 0], [0.9, 0], [0.8, 0], [0, 1]], np.float32))
    index.remove(np.array([0]))
    rows, _ = index.search(np.array([1, 0], np.float32), 2, exclude=[np.array([1])])
    assert rows[0].tolist() == [2, 3]
    assert len(index) == 3
    assert np.isneginf(index.scores(np.array([1, 0], np.float32))[0])
    rows, scores = index.search(np.array([1, 0], np.float32), 10)
    assert rows[0].tolist()[:3] == [1, 2, 3] and rows[0, 3] == -1 and np.isneginf(scores[0, 3])


def test_top_k_ties_break_by_row_and_padding() -> None:
    rows, scores = top_k(np.array([1.0, 2.0, 2.0, -np.inf, 2.0], np.float32), 3)
    assert rows.tolist() == [1, 2, 4]
    assert top_k(np.full(3, -np.inf, np.float32), 2)[0].size == 0
    index = ExactIndex(1)
    index.add(np.array([0]), np.ones((1, 1), np.float32))
    out = padded_scores(index, np.ones(1, np.float32), 3)
    assert out[0] == 1 and np.isneginf(out[1:]).all()


@pytest.mark.parametrize("kind", ["normal", "ties", "removed rows", "sorted"])
def test_top_k_equals_a_full_sort_on_every_path(kind: str) -> None:
    # Large scans take a sampled threshold first; small ones a partial sort. Both must give the
    # k best finite scores, best first, equal scores by lower row, including ties at the k-th.
    rng = np.random.default_rng(len(kind))
    for _ in range(60):
        n, k = int(rng.integers(1, 40_000)), int(rng.integers(1, 700))
        scores = rng.standard_normal(n).astype(np.float32)
        if kind == "ties":
            scores = np.round(scores * 3) / 3
        elif kind == "removed rows":
            scores[rng.random(n) < 0.5] = -np.inf
        elif kind == "sorted":  # the strided sample sees only every step-th rank
            scores = np.sort(scores)
        finite = np.flatnonzero(np.isfinite(scores))
        expected = finite[np.lexsort((finite, -scores[finite]))][:k]
        rows, values = top_k(scores, k)
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_array_equal(values, scores[expected])

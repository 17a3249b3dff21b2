"""Full ranking: exact ranks under ties, history never ranked, sub-ranking candidate sets."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from thaw.evaluation.ranking import rank_users, rankings_for, tiebreak_keys
from thaw.evaluation.splits import make_split


def _oracle(scores, history_row, candidates, keys, relevant):
    """Full candidate order by (score desc, key asc), computed the slow obvious way."""
    items = [i for i in np.flatnonzero(candidates) if i not in set(history_row)]
    order = sorted(items, key=lambda i: (-scores[i], keys[i]))
    rel = [i for i in relevant if i in set(items)]
    return order, rel


@pytest.mark.parametrize("n_levels", [3, 1000])  # heavy ties, then almost none
def test_rank_users_matches_brute_force(n_levels: int) -> None:
    rng = np.random.default_rng(n_levels)
    b, n, k = 30, 60, 10
    scores = rng.integers(0, n_levels, (b, n)).astype(np.float32)
    candidates = rng.random(n) < 0.7
    history = sp.random(b, n, density=0.15, format="csr", random_state=1, dtype=np.float32)
    relevant = sp.random(b, n, density=0.2, format="csr", random_state=2, dtype=np.float32)
    keys = tiebreak_keys(np.arange(b), n, seed=3, fold=0)
    out = rank_users(scores, np.arange(100, 100 + b), history, relevant, candidates, keys, k)
    expected_users = []
    for row in range(b):
        hist = history.indices[history.indptr[row] : history.indptr[row + 1]]
        rel = relevant.indices[relevant.indptr[row] : relevant.indptr[row + 1]]
        order, rel_kept = _oracle(scores[row], hist, candidates, keys[row], rel)
        if not rel_kept:
            continue
        i = len(expected_users)
        expected_users.append(100 + row)
        want_ranks = sorted(order.index(r) + 1 for r in rel_kept)
        assert sorted(out.ranks[i].tolist()) == want_ranks
        assert out.n_candidates[i] == len(order)
        top = out.top[i][out.top[i] >= 0].tolist()
        assert top == order[:k]
        assert not set(top) & set(hist.tolist())  # history is never ranked
        assert all(candidates[t] for t in top)
    assert out.users.tolist() == expected_users


def test_non_finite_scores_raise() -> None:
    scores = np.zeros((1, 4))
    scores[0, 2] = np.nan
    rel = sp.csr_matrix(np.array([[1, 0, 0, 0]], np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        rank_users(scores, np.array([0]), sp.csr_matrix((1, 4)), rel, np.ones(4, bool),
                   tiebreak_keys(np.array([0]), 4, 0, 0), 2)


def test_tiebreak_keys_are_seeded_distinct_orders() -> None:
    a = tiebreak_keys(np.array([0, 5]), 50, seed=1, fold=2)
    assert np.array_equal(a, tiebreak_keys(np.array([0, 5]), 50, seed=1, fold=2))
    assert np.array_equal(a[1], tiebreak_keys(np.array([5]), 50, seed=1, fold=2)[0])  # batch-free
    assert not np.array_equal(a, tiebreak_keys(np.array([0, 5]), 50, seed=2, fold=2))
    assert not np.array_equal(a[0], a[1])  # every user its own order
    assert all(len(set(row.tolist())) == 50 for row in a)  # a strict order: no ties left
    assert abs(np.corrcoef(np.arange(50), a[0])[0, 1]) < 0.5  # not the id order


def test_constant_scores_rank_like_random(big_snapshot) -> None:
    """A model with no information must not beat chance through tie-breaking by item id."""
    n = big_snapshot.n_items
    users = np.arange(big_snapshot.n_users)
    relevant = sp.csr_matrix(
        (np.ones(len(users) * 5), (np.repeat(users, 5), np.tile(np.arange(5), len(users)))),
        shape=(len(users), n),
    )  # items 0..4 relevant for everyone: an id-ordered tie-break would put them first
    out = rank_users(np.zeros((len(users), n)), users, sp.csr_matrix((len(users), n)), relevant,
                     np.ones(n, bool), tiebreak_keys(users, n, 0, 0), 10)
    mean_rank = np.mean([r.mean() for r in out.ranks])
    assert abs(mean_rank - (n + 1) / 2) < 0.1 * n


def test_cold_item_rankings(snapshot) -> None:
    split = make_split(snapshot, "cold-item", fold=1)
    rankings = rankings_for(split)
    assert list(rankings) == ["cold", "warm", "overall"]
    warm = split.warm_items
    cold = rankings["cold"]
    assert np.array_equal(cold.candidates, ~warm)  # all non-warm items, cold val included
    assert split.cold_items[cold.test.item].all()
    assert np.array_equal(rankings["warm"].candidates, warm)
    assert warm[rankings["warm"].test.item].all()
    assert rankings["overall"].candidates.all()
    both = set(cold.test.user.tolist()) & set(rankings["warm"].test.user.tolist())
    assert set(rankings["overall"].test.user.tolist()) == both


def test_cold_user_and_warm_rankings(snapshot) -> None:
    cold_user = rankings_for(make_split(snapshot, "cold-user", fold=0))
    assert list(cold_user) == ["cold", "warm"]
    assert cold_user["cold"].candidates.all()
    warm = rankings_for(make_split(snapshot, "warm", fold=0))
    assert list(warm) == ["warm"]

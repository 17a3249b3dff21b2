"""Full ranking: which items compete in each sub-ranking, and ranks with seeded tie-breaking.

Every sub-ranking of a split (`cold`, `warm`, `overall`) names its test pairs and its candidate
items. A user's scoring-time history (training items, onboarding reveals) is never ranked.
Ties in a model's scores are broken by a seeded random order of the items per user, the same
for every model, so a constant-score model ranks like a random one and never by item id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from thaw.evaluation.splits import Pairs, Split, parse_scenario


@dataclass(frozen=True)
class Ranking:
    """One sub-ranking: test pairs, the candidate items, and which items count as cold."""

    name: str
    test: Pairs
    candidates: np.ndarray  # (n_items,) bool
    cold_items: np.ndarray  # (n_items,) bool: items without training pairs (exposure)
    split_by_cold: bool = False  # also report recall on the cold and the warm test items apart


def primary_ranking(scenario: str) -> str:
    """The sub-ranking a scenario is judged on: `warm` for warm, `cold` otherwise."""
    return "warm" if parse_scenario(scenario)[0] == "warm" else "cold"


def rankings_for(split: Split) -> dict[str, Ranking]:
    """The sub-rankings of a split, primary first.

    - warm: warm test pairs among items with training pairs.
    - cold (cold-item, cold-both): cold test pairs among all items without training pairs.
    - cold (cold-user, onboarding-k): cold users' test pairs among all items.
    - overall (cold-item only): all test pairs among all items, for users that have both cold
      and warm test pairs (ColdRec's `overall_test`); it also reports `cold_recall@k` and
      `warm_recall@k`, recall over each user's cold / warm test items in this mixed list.
    """
    kind, _ = parse_scenario(split.scenario)
    warm_items = split.warm_items
    cold = ~warm_items
    every = np.ones(split.n_items, bool)
    test = split.test
    if kind == "warm":
        return {"warm": Ranking("warm", test, warm_items, cold)}
    is_cold = split.cold_items[test.item] if kind == "cold-item" else split.cold_users[test.user]
    cold_test, warm_test = test.subset(is_cold), test.subset(~is_cold)
    out = {}
    if kind in ("cold-item", "cold-both"):
        out["cold"] = Ranking("cold", cold_test, cold, cold)
    else:
        out["cold"] = Ranking("cold", cold_test, every, cold)
    out["warm"] = Ranking("warm", warm_test, warm_items, cold)
    if kind == "cold-item":
        both = np.intersect1d(cold_test.user, warm_test.user)
        out["overall"] = Ranking("overall", test.subset(np.isin(test.user, both)), every, cold, True)
    return out


def tiebreak_keys(users: np.ndarray, n_items: int, seed: int, fold: int) -> np.ndarray:
    """(len(users), n_items) int64 tie-breaking keys (lower wins), fixed per (seed, fold, user).

    key(u, i) = (a_u * pi(i) + b_u) mod p: pi a seeded random permutation of the items, p the
    smallest prime >= n_items, a_u in [1, p), b_u in [0, p) seeded per user. Keys of one user
    are distinct (an affine map mod p is a bijection), every user gets another order, and no
    order follows item ids; a model with tied scores ranks like a random one, identically for
    every model, run and batching.
    """
    p = _prime_at_least(n_items)
    pi = np.random.default_rng([seed, fold, 0x71E]).permutation(n_items).astype(np.int64)
    users = np.asarray(users, np.int64)
    coeffs = np.array(
        [np.random.default_rng([seed, fold, 0x71E, int(u)]).integers([1, 0], [p, p]) for u in users],
        np.int64,
    ).reshape(len(users), 2)
    return (coeffs[:, :1] * pi[None, :] + coeffs[:, 1:]) % p


def _prime_at_least(n: int) -> int:
    candidate = max(n, 2)
    while any(candidate % d == 0 for d in range(2, int(candidate**0.5) + 1)):
        candidate += 1
    return candidate


@dataclass
class RankedUsers:
    """What one sub-ranking yields for a set of users."""

    users: np.ndarray  # (n,) user indices with at least one relevant candidate
    ranks: list[np.ndarray]  # per user: 1-based ranks of the relevant items
    items: list[np.ndarray]  # per user: those relevant items, in the order of `ranks`
    n_candidates: np.ndarray  # (n,) candidates per user (history removed)
    top: np.ndarray  # (n, max_k) best items, -1 padded when fewer candidates


def rank_users(
    scores: np.ndarray,
    users: np.ndarray,
    history: sp.csr_matrix,
    relevant: sp.csr_matrix,
    candidates: np.ndarray,
    tiebreak: np.ndarray,
    max_k: int,
) -> RankedUsers:
    """Rank the candidates of each user by (score desc, tiebreak asc).

    `scores` (b, n_items) for `users` (b,); `history` (b, n_items) CSR of items never ranked;
    `relevant` (b, n_items) CSR of held-out items; `candidates` (n_items,) bool; `tiebreak`
    (b, n_items) keys (see `tiebreak_keys`). Relevant items outside a user's candidates are
    dropped; users left with none are skipped.
    """
    if not np.all(np.isfinite(scores)):
        raise ValueError("a model returned non-finite scores (NaN or inf)")
    b = scores.shape[0]
    # Work on candidate columns only: (b, n_cand) arrays; `column` maps items to them.
    cand = np.flatnonzero(candidates)
    column = np.full(len(candidates), -1, np.int64)
    column[cand] = np.arange(len(cand))
    mask = np.ones((b, len(cand)), bool)  # (b, n_cand) rankable items
    hist = history.tocoo()
    in_cand = column[hist.col] >= 0
    mask[hist.row[in_cand], column[hist.col[in_cand]]] = False
    masked = np.where(mask, scores[:, cand], -np.inf)  # -inf never outranks a finite relevant score
    keys = tiebreak[:, cand]
    rel = relevant.tocsr()
    rel.sum_duplicates()
    rel_row = np.repeat(np.arange(b), np.diff(rel.indptr))
    rel_col = column[rel.indices]
    keep = rel_col >= 0
    keep[keep] = mask[rel_row[keep], rel_col[keep]]
    rel_row, rel_col = rel_row[keep], rel_col[keep]
    order = np.lexsort((rel_col, rel_row))
    rel_row, rel_col = rel_row[order], rel_col[order]
    kept = np.unique(rel_row)
    bounds = np.searchsorted(rel_row, np.append(kept, b))
    n_cols = masked.shape[1]
    direct = 2 * max(int(np.log2(max(n_cols, 2))), 1)  # up to this many relevant: compare, else sort
    ranks, items = [], []
    for i, row in enumerate(kept):
        cols = rel_col[bounds[i] : bounds[i + 1]]
        items.append(cand[cols])
        s_row = masked[row]
        s_rel = s_row[cols]
        if len(cols) <= direct:  # (n_rel, n_cand) comparisons beat an n log n sort
            ahead = (s_row[None, :] > s_rel[:, None]).sum(axis=1)
            n_equal = (s_row[None, :] == s_rel[:, None]).sum(axis=1)
        else:
            ascending = np.sort(s_row)
            right = np.searchsorted(ascending, s_rel, side="right")
            ahead = n_cols - right  # strictly higher scores
            n_equal = right - np.searchsorted(ascending, s_rel, side="left")
        tied = np.flatnonzero(n_equal > 1)
        if len(tied):  # equal scores: those with a lower tiebreak key come first
            same = s_row[None, :] == s_rel[tied, None]  # (n_tied, n_cand)
            ahead[tied] += (same & (keys[row][None, :] < keys[row, cols[tied], None])).sum(axis=1)
        ranks.append(ahead + 1)
    n_candidates = mask[kept].sum(axis=1).astype(np.int64)
    top = _top_k(masked[kept], keys[kept], n_candidates, max_k)
    top = np.where(top >= 0, cand[np.maximum(top, 0)], -1)
    return RankedUsers(np.asarray(users, np.int64)[kept], ranks, items, n_candidates, top)


def _top_k(masked: np.ndarray, tiebreak: np.ndarray, n_candidates: np.ndarray, k: int) -> np.ndarray:
    """(b, k) best columns by (score desc, tiebreak asc), -1 padded; exact under ties."""
    b, n = masked.shape
    top = np.full((b, k), -1, np.int64)
    if b == 0 or n == 0:
        return top
    kk = min(k, n)
    threshold = np.partition(masked, n - kk, axis=1)[:, n - kk]  # k-th largest per row
    at_least = masked >= threshold[:, None]
    simple = (at_least.sum(axis=1) == kk) & (n_candidates >= kk)
    if simple.any():
        # Exactly k items reach the threshold: take them, then order by (score, tiebreak).
        rows = np.flatnonzero(simple)
        cols = np.nonzero(at_least[rows])[1].reshape(len(rows), kk)
        s, t = np.take_along_axis(masked[rows], cols, 1), np.take_along_axis(tiebreak[rows], cols, 1)
        top[rows, :kk] = np.take_along_axis(cols, np.lexsort((t, -s), axis=1), 1)
    for row in np.flatnonzero(~simple):  # ties at the boundary, or fewer than k candidates
        s, t = masked[row], tiebreak[row]
        if n_candidates[row] <= kk:
            chosen = np.flatnonzero(np.isfinite(s))
        else:
            above = np.flatnonzero(s > threshold[row])
            tied = np.flatnonzero(s == threshold[row])
            need = kk - len(above)
            tied = tied[np.argpartition(t[tied], need - 1)[:need]] if need < len(tied) else tied
            chosen = np.concatenate([above, tied])
        best = chosen[np.lexsort((t[chosen], -s[chosen]))][:k]
        top[row, : len(best)] = best
    return top

"""Ranking metrics as pure functions over arrays.

Definitions (binary relevance; `ranked` is a user's candidates best first, `relevant` the user's
held-out items among those candidates; ranks are 1-based):

- Recall@K    = |top-K ∩ relevant| / |relevant|
- Precision@K = |top-K ∩ relevant| / K
- HitRate@K   = 1 if |top-K ∩ relevant| > 0 else 0
- NDCG@K      = DCG@K / IDCG@K, DCG@K = Σ_{relevant at rank r <= K} 1 / log2(r + 1),
                IDCG@K = Σ_{r=1}^{min(|relevant|, K)} 1 / log2(r + 1)
- MRR         = 1 / (rank of the best-ranked relevant item), over the full ranking
- AUC         = fraction of (relevant, non-relevant) candidate pairs ordered correctly
                (1 when every candidate is relevant)
- coverage@K  = |∪ top-K lists| / |candidate items|
- cold exposure@K = share of top-K slots filled by cold items (no training interaction)
- Gini@K      = Gini coefficient of the recommendation counts c_i (number of users whose top-K
                list holds item i) over all n candidate items, never-recommended ones counting
                0: with c sorted ascending, G = Σ_{j=1..n} (2j − n − 1) c_(j) / (n Σ_j c_(j)).
                0 = every candidate recommended equally often; (n − 1)/n = every slot on one item.
- mean popularity@K = mean over all top-K slots of the shown item's training popularity,
                the share of warm users (users with a training interaction) who interacted with
                it in training (ARP of Abdollahpouri et al.; 0 for a cold item).

The list metrics (coverage, cold exposure, Gini, mean popularity) pool every user's top-K list of
one fold; they describe what a catalogue shows, not whether it is right.

The per-user functions take one ranking; `metrics_from_ranks` computes the same numbers for many
users from the 1-based ranks of their relevant items, which is what the harness uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_KS: tuple[int, ...] = (10, 20, 50)


def _hits(ranked: np.ndarray, relevant: Iterable[int], k: int) -> int:
    _check_k(k)
    rel = set(int(r) for r in relevant)
    return sum(1 for item in np.asarray(ranked)[:k] if int(item) in rel)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _nonempty(relevant: Iterable[int]) -> set[int]:
    rel = set(int(r) for r in relevant)
    if not rel:
        raise ValueError("relevant must not be empty")
    return rel


def recall_at_k(ranked: np.ndarray, relevant: Iterable[int], k: int) -> float:
    """Hits in the top k over the number of relevant items."""
    rel = _nonempty(relevant)
    return _hits(ranked, rel, k) / len(rel)


def precision_at_k(ranked: np.ndarray, relevant: Iterable[int], k: int) -> float:
    """Hits in the top k over k."""
    return _hits(ranked, _nonempty(relevant), k) / k


def hit_rate_at_k(ranked: np.ndarray, relevant: Iterable[int], k: int) -> float:
    """1.0 if any relevant item is in the top k, else 0.0."""
    return float(_hits(ranked, _nonempty(relevant), k) > 0)


def ndcg_at_k(ranked: np.ndarray, relevant: Iterable[int], k: int) -> float:
    """Binary-relevance NDCG with the ideal DCG over min(|relevant|, k) positions."""
    _check_k(k)
    rel = _nonempty(relevant)
    dcg = sum(
        1.0 / np.log2(r + 2) for r, item in enumerate(np.asarray(ranked)[:k]) if int(item) in rel
    )
    idcg = sum(1.0 / np.log2(r + 2) for r in range(min(len(rel), k)))
    return float(dcg / idcg)


def reciprocal_rank(ranked: np.ndarray, relevant: Iterable[int]) -> float:
    """1 / rank of the first relevant item (0.0 if none is ranked)."""
    rel = _nonempty(relevant)
    for r, item in enumerate(np.asarray(ranked), start=1):
        if int(item) in rel:
            return 1.0 / r
    return 0.0


def auc(ranked: np.ndarray, relevant: Iterable[int]) -> float:
    """Share of (relevant, non-relevant) pairs in which the relevant item is ranked higher.

    `ranked` must be the user's whole candidate list, so every non-relevant candidate counts.
    """
    rel = _nonempty(relevant)
    is_rel = np.array([int(item) in rel for item in np.asarray(ranked)], bool)
    n_pos, n_neg = int(is_rel.sum()), int((~is_rel).sum())
    if n_pos == 0:
        raise ValueError("no relevant item appears in ranked")
    if n_neg == 0:
        return 1.0
    # For each relevant item: non-relevant items ranked below it.
    below = n_neg - np.cumsum(~is_rel)[is_rel]
    return float(below.sum() / (n_pos * n_neg))


def coverage(top_lists: Sequence[np.ndarray], n_candidates: int) -> float:
    """Distinct items over all users' lists, as a share of the candidate items."""
    if n_candidates < 1:
        raise ValueError("n_candidates must be >= 1")
    if not len(top_lists):
        return 0.0
    return len(np.unique(np.concatenate([np.asarray(t, np.int64) for t in top_lists]))) / n_candidates


def exposure_share(top_lists: Sequence[np.ndarray], is_cold: np.ndarray) -> float:
    """Share of recommendation slots (over all lists) that show a cold item."""
    if not len(top_lists):
        return 0.0
    slots = np.concatenate([np.asarray(t, np.int64) for t in top_lists])
    return float(is_cold[slots].mean()) if len(slots) else 0.0


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative `counts` (0 = equal; nan when they sum to 0)."""
    c = np.sort(np.asarray(counts, np.float64).ravel())
    if len(c) == 0 or np.any(c < 0):
        raise ValueError("counts must be a non-empty array of non-negative values")
    total = c.sum()
    if total == 0:
        return float("nan")
    n = len(c)
    weights = 2.0 * np.arange(1, n + 1) - n - 1  # (n,) 2j - n - 1
    return float((weights * c).sum() / (n * total))


def recommendation_gini(top_lists: Sequence[np.ndarray], candidates: np.ndarray) -> float:
    """Gini of how often each candidate item appears in the lists (see module docstring).

    `candidates` is an (n_items,) bool mask; every listed item must be a candidate.
    """
    candidates = np.asarray(candidates, bool)
    slots = _slots(top_lists)
    if len(slots) and not candidates[slots].all():
        raise ValueError("a list holds an item outside the candidates")
    if not candidates.any():
        raise ValueError("there must be at least one candidate item")
    counts = np.bincount(slots, minlength=len(candidates))[candidates]
    return gini(counts)


def mean_popularity(top_lists: Sequence[np.ndarray], popularity: np.ndarray) -> float:
    """Mean of `popularity[item]` over every slot of every list (nan without slots)."""
    slots = _slots(top_lists)
    return float(np.asarray(popularity, np.float64)[slots].mean()) if len(slots) else float("nan")


def _slots(top_lists: Sequence[np.ndarray]) -> np.ndarray:
    if not len(top_lists):
        return np.zeros(0, np.int64)
    return np.concatenate([np.asarray(t, np.int64) for t in top_lists])


def metrics_from_ranks(
    ranks: Sequence[np.ndarray], n_candidates: np.ndarray, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, np.ndarray]:
    """Per-user metric arrays from each user's 1-based ranks of relevant items.

    `ranks[u]` holds the distinct ranks of user u's relevant items among their `n_candidates[u]`
    candidates. Returns `recall@k`, `ndcg@k`, `precision@k`, `hitrate@k` for every k, `mrr`
    and `auc`, each an (n_users,) float64 array.
    """
    n = len(ranks)
    if len(n_candidates) != n:
        raise ValueError("ranks and n_candidates must have one entry per user")
    for k in ks:
        _check_k(k)
    out: dict[str, np.ndarray] = {}
    lengths = np.array([len(r) for r in ranks], np.int64)
    if np.any(lengths == 0):
        raise ValueError("every user needs at least one relevant item")
    flat = np.concatenate([np.sort(np.asarray(r, np.int64)) for r in ranks]) if n else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(n), lengths)
    discount = 1.0 / np.log2(flat + 1.0)
    max_k = max(max(ks), int(lengths.max(initial=0)))
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, max_k + 2)))])
    for k in ks:
        hit = flat <= k
        hits = np.bincount(owner, weights=hit, minlength=n)
        dcg = np.bincount(owner, weights=np.where(hit, discount, 0.0), minlength=n)
        out[f"recall@{k}"] = hits / lengths
        out[f"ndcg@{k}"] = dcg / ideal[np.minimum(lengths, k)]
        out[f"precision@{k}"] = hits / k
        out[f"hitrate@{k}"] = (hits > 0).astype(np.float64)
    best = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(best, owner, flat)
    out["mrr"] = 1.0 / best if n else np.zeros(0)
    # Position of each relevant item among the user's relevant items (0-based, by rank).
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if n else np.zeros(0, np.int64)
    within = np.arange(len(flat)) - np.repeat(starts, lengths)
    n_neg = np.asarray(n_candidates, np.int64) - lengths
    if np.any(n_neg < 0):
        raise ValueError("a user has more relevant items than candidates")
    neg_above = flat - 1 - within  # non-relevant candidates ranked above each relevant item
    below = np.bincount(owner, weights=n_neg[owner] - neg_above, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["auc"] = np.where(n_neg > 0, below / (lengths * np.maximum(n_neg, 1)), 1.0)
    return out


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    """Every per-user metric name `metrics_from_ranks` returns, in report order."""
    names = [f"recall@{k}" for k in ks] + [f"ndcg@{k}" for k in ks]
    names += [f"precision@{k}" for k in ks] + [f"hitrate@{k}" for k in ks]
    return names + ["mrr", "auc"]

"""A popularity prior for new users, as one more coordinate of thaw's vectors.

Item vectors end in p_i = log(1 + number of training users of item i) (0 for an item without
training interactions, or one added later); user vectors end in a weight w: 0 for a user with a
learned id part (warm), `weights[0]` for a new user with attributes only, `weights[1]` for a new
user with a history (onboarding). The score gains w * p_i, and serving stays a dot product.

Why: the training loss ranks each user's positives against the other items of the batch, so the
towers learn what sets a user's items apart more than how popular they are (on ml-100k the learned
item biases stay near 0); for a new user, whose tower has little to go on, popularity can be the
strongest signal there is, or nearly none (CiteULike), so the weights are chosen per fit:
`simulated_new_users` turns a sample of training users into new ones (no id; no history, or
their first k interactions by time), and `best_weight` picks each weight on them (docs/methods.md).

How much a short history says depends on what is in it. Where newcomers' first interactions are
mostly the same few items (MovieLens's sign-up pages), three of those say little and popularity
should weigh more; three items a user chose for themselves say much more. So the weight for a
history can adapt: each item's *opening share* is the fraction of its training users who had it
among their first k interactions; a history whose mean share looks like the training users' first
k gets the weight chosen on those, one that looks like k random items of theirs the weight chosen on
random reveals, and shares in between interpolate (`openness`). The shares ride as one more item
coordinate that users hold 0 in, so scoring stays one dot product.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from thaw.models.thaw_features import torch_threads
from thaw.models.tower_data import EntityFeatures, user_table
from thaw.training.validation import ranking_metric  # the metric early stopping uses

if TYPE_CHECKING:
    from thaw.models.two_tower import TwoTower
    from thaw.training.loop import TrainConfig, TrainingData

WEIGHT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
"""Candidate prior weights, smallest first (a tie keeps the smaller weight)."""

SIMULATED_HISTORY = 3  # first interactions a simulated onboarding user reveals
MAX_SIMULATED_USERS = 1000
OPENING_SHRINK = 10.0  # pseudo-users added to each item's count: a rarely used item's share stays near 0
MIN_OPENING_GAP = 0.05  # first-k and random-k histories must differ this much in mean share to adapt
CHUNK_USERS = 256  # users scored at once while choosing (bounds memory on big catalogues)


def log_popularity(train: sp.spmatrix) -> np.ndarray:
    """(n_items,) float32 log(1 + distinct training users) of each item."""
    counts = np.asarray((sp.csr_matrix(train) > 0).sum(axis=0), np.float64).ravel()
    return np.log1p(counts).astype(np.float32)


def user_weights(
    has_id: np.ndarray, n_history: np.ndarray, weights: Sequence[float], openness: np.ndarray | None = None
) -> np.ndarray:
    """(n,) float32 prior coordinate of each user: 0 with an id part, else by whether there is history.

    `weights` is (no history, history) or (no history, opening history, chosen history); with three,
    a history's weight moves from the third to the second as its `openness` (n,) goes from 0 to 1.
    """
    has_id = np.asarray(has_id, bool)
    with_history = np.full(len(has_id), weights[1], np.float64)
    if len(weights) == 3 and openness is not None:
        with_history = weights[2] + (weights[1] - weights[2]) * np.clip(openness, 0.0, 1.0)
    new = np.where(np.asarray(n_history) > 0, with_history, weights[0])
    return np.where(has_id, 0.0, new).astype(np.float32)


def first_interactions(
    train: sp.csr_matrix, times: np.ndarray | None, k: int, rng: np.random.Generator
) -> sp.csr_matrix:
    """(n_users, n_items) 1 where the item is among the user's first k training items by `times`.

    `times` holds the first-event time of each entry of `train` (sorted indices); ties and missing
    times are broken at random.
    """
    rows, cols = [], []
    for user in range(train.shape[0]):
        lo, hi = train.indptr[user], train.indptr[user + 1]
        when = np.zeros(hi - lo) if times is None else times[lo:hi]
        first = train.indices[lo:hi][np.lexsort((rng.random(hi - lo), when))[:k]]
        rows.append(np.full(len(first), user))
        cols.append(first)
    row, col = np.concatenate(rows or [np.empty(0, int)]), np.concatenate(cols or [np.empty(0, int)])
    return sp.csr_matrix((np.ones(len(row), np.float32), (row, col)), shape=train.shape)


def opening_shares(train: sp.csr_matrix, firsts: sp.csr_matrix) -> np.ndarray:
    """(n_items,) float32 share of each item's training users who had it among their first items."""
    users = np.asarray((train > 0).sum(axis=0), np.float64).ravel()
    opening = np.asarray(firsts.sum(axis=0), np.float64).ravel()
    return (opening / (users + OPENING_SHRINK)).astype(np.float32)


def openness(history: sp.csr_matrix, shares: np.ndarray, opening_range: Sequence[float]) -> np.ndarray:
    """(n,) where each history's mean opening share lies between a random pick (0) and a first pick (1).

    Columns of `history` index `shares`; only positive entries count. Rows without any give 0.
    """
    history = sp.csr_matrix(history)
    flags = (history.data > 0).astype(np.float64)
    positive = sp.csr_matrix((flags, history.indices, history.indptr), shape=history.shape)
    counts = np.asarray(positive.sum(axis=1)).ravel()
    mean = (positive @ np.asarray(shares, np.float64)) / np.maximum(counts, 1)
    low, high = opening_range
    return np.clip((mean - low) / (high - low), 0.0, 1.0)


def simulated_new_users(
    train: sp.csr_matrix,
    validation: sp.spmatrix | None,
    times: np.ndarray | None,
    *,
    k: int = SIMULATED_HISTORY,
    max_users: int = MAX_SIMULATED_USERS,
    seed: int = 0,
    reveal: str = "first",
) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]:
    """(users, revealed, rest): training users replayed as newcomers who reveal k of their items.

    Users with more than k training items are sampled (at most `max_users`, seeded); `revealed`
    (n, n_items) holds each one's first k training items by `times` (the first-event time of each
    entry of `train`, sorted indices; ties and missing times broken at random), or with
    `reveal="random"` k of them drawn at random; `rest` the other training items plus their
    validation items: what the newcomer goes on to like.
    """
    if reveal not in ("first", "random"):
        raise ValueError(f"reveal must be 'first' or 'random', got {reveal!r}")
    train = sp.csr_matrix(train, dtype=np.float32)
    train.sort_indices()
    rng = np.random.default_rng([seed, 0x9A1])
    eligible = np.flatnonzero(np.diff(train.indptr) > k)
    if len(eligible) > max_users:
        eligible = np.sort(rng.choice(eligible, size=max_users, replace=False))
    picked = train[eligible]
    if reveal == "first":
        when = None if times is None else np.concatenate(
            [times[train.indptr[u] : train.indptr[u + 1]] for u in eligible] or [np.empty(0, np.int64)])
        revealed = first_interactions(picked, when, k, rng)
    else:
        rows = np.repeat(np.arange(len(eligible)), k)
        own = (picked.indices[picked.indptr[r] : picked.indptr[r + 1]] for r in range(len(eligible)))
        cols = np.concatenate([rng.choice(items, size=k, replace=False) for items in own] or [np.empty(0, np.int64)])
        revealed = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=picked.shape)
    later = picked if validation is None else picked + (sp.csr_matrix(validation)[eligible] > 0)
    later = sp.csr_matrix(later, dtype=np.float32)
    later.data[:] = 1.0
    rest = sp.csr_matrix(later - later.multiply(revealed), dtype=np.float32)
    rest.eliminate_zeros()
    return eligible, revealed, rest


def replayed_openness(
    train: sp.csr_matrix, firsts: sp.csr_matrix, users: np.ndarray, revealed: sp.csr_matrix
) -> np.ndarray:
    """(n,) mean opening share of each replayed user's revealed items, leaving that user's own
    interactions out of the shares (an in-sample share would flatter first-k histories)."""
    users_of = np.asarray((train > 0).sum(axis=0), np.float64).ravel()
    opening = np.asarray(firsts.sum(axis=0), np.float64).ravel()
    shown = sp.coo_matrix(sp.csr_matrix(revealed) > 0)
    own = np.asarray(sp.csr_matrix(firsts)[users[shown.row], shown.col]).ravel()  # 1 where it was the user's own first
    shares = (opening[shown.col] - own) / (users_of[shown.col] - 1 + OPENING_SHRINK)
    n = shown.shape[0]
    return np.bincount(shown.row, shares, n) / np.maximum(np.bincount(shown.row, minlength=n), 1)


def best_weight(
    score_chunks: Iterator[tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]],
    prior: np.ndarray,
    *,
    k: int,
    metric: str,
    grid: Sequence[float] = WEIGHT_GRID,
) -> tuple[float, dict[float, float]]:
    """The weight w of `grid` maximising the mean metric of `scores + w * prior` over all users.

    `score_chunks` yields (scores (n, n_items), excluded (n, n_items), relevant (n, n_items)) for
    successive groups of users; excluded items never rank. Returns the best weight (the smallest
    on ties) and the metric of every weight.
    """
    prior = np.asarray(prior, np.float64)[None, :]
    totals = np.zeros(len(grid))
    n_users = 0
    for scores, excluded, relevant in score_chunks:
        relevant = sp.csr_matrix(relevant)
        rows = np.diff(relevant.indptr) > 0
        skip = sp.csr_matrix(excluded).nonzero()
        for i, weight in enumerate(grid):
            candidate = np.asarray(scores, np.float64) + float(weight) * prior
            candidate[skip] = -np.inf
            totals[i] += ranking_metric(candidate, relevant, k, metric) * rows.sum()
        n_users += int(rows.sum())
    curve = {float(w): float(t / max(n_users, 1)) for w, t in zip(grid, totals)}
    best = max(curve, key=lambda w: (curve[w], -w))
    return best, curve


def choose_weights(
    model: TwoTower, table: torch.Tensor, popularity: np.ndarray, training: TrainingData, train: TrainConfig,
    *, adaptive: bool = True, given: Sequence[float] | None = None,
) -> tuple[tuple[float, ...], np.ndarray | None, tuple[float, float] | None, dict[str, dict[float, float]]]:
    """The prior weights, chosen on training users replayed as new, with what adapting needs, and curves.

    Returns (weights, opening shares, opening range, curves). `simulated_new_users` samples the
    users; each is scored without its id, with no history and with its first interactions, against
    what it went on to like (`table`: item vectors without the prior coordinate). With `adaptive`
    and training times that set first interactions apart (their mean opening share exceeds that of
    random ones by `MIN_OPENING_GAP`), the same users also reveal k random items, a third weight is
    chosen on those, and the shares and the two mean shares (random, first) are returned; else the
    shares and range are None and there are two weights. `given` weights are kept, not chosen (two
    of them turn adapting off; with three, the shares are still measured).
    """
    if given is not None and len(given) == 2:
        return tuple(given), None, None, {}
    seed = train.seed
    users, revealed, rest = simulated_new_users(training.train, training.validation, training.train_times, seed=seed)
    empty = sp.csr_matrix(revealed.shape, dtype=np.float32)
    views = [("no-history", users, empty, revealed + rest), ("onboarding", users, revealed, rest)]
    shares = opening_range = None
    if (adaptive or given is not None) and training.train_times is not None and len(users):
        rng = np.random.default_rng([seed, 0x0F1])
        firsts = first_interactions(training.train, training.train_times, SIMULATED_HISTORY, rng)
        picked, shown, later = simulated_new_users(training.train, training.validation, training.train_times,
                                                   seed=seed, reveal="random")
        low = float(replayed_openness(training.train, firsts, picked, shown).mean())
        high = float(replayed_openness(training.train, firsts, users, revealed).mean())
        if high - low >= MIN_OPENING_GAP:
            shares, opening_range = opening_shares(training.train, firsts), (low, high)
            views.append(("chosen history", picked, shown, later))
    if given is not None:
        return (tuple(given) if shares is not None else tuple(given[:2])), shares, opening_range, {}
    weights: list[float] = []
    curves: dict[str, dict[float, float]] = {}
    for name, replayed, history, relevant in views:
        chunks = _id_less_scores(model, table, training.users, replayed, history, relevant, train)
        weight, curves[name] = best_weight(chunks, popularity, k=train.eval_k, metric=train.eval_metric)
        weights.append(weight)
    return tuple(weights), shares, opening_range, curves


def _id_less_scores(
    model: TwoTower, table: torch.Tensor, features: EntityFeatures, users: np.ndarray,
    history: sp.csr_matrix, relevant: sp.csr_matrix, train: TrainConfig,
) -> Iterator[tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]]:
    """(scores, history, relevant) of `users` scored as newcomers (no id part), a chunk at a time."""
    for start in range(0, len(users), CHUNK_USERS):
        rows = slice(start, start + CHUNK_USERS)
        chunk = users[rows]
        with torch_threads(train.threads):
            vectors = user_table(
                model, table, history[rows], features, chunk, chunk, np.zeros(len(chunk), bool),
                max_history=train.max_eval_history,
            )
        yield (vectors @ table.T).numpy(), history[rows], relevant[rows]  # (n, n_items)

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
CHUNK_USERS = 256  # users scored at once while choosing (bounds memory on big catalogues)


def log_popularity(train: sp.spmatrix) -> np.ndarray:
    """(n_items,) float32 log(1 + distinct training users) of each item."""
    counts = np.asarray((sp.csr_matrix(train) > 0).sum(axis=0), np.float64).ravel()
    return np.log1p(counts).astype(np.float32)


def user_weights(has_id: np.ndarray, n_history: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """(n,) float32 prior coordinate of each user: 0 with an id part, else by whether there is history."""
    has_id = np.asarray(has_id, bool)
    new = np.where(np.asarray(n_history) > 0, np.float32(weights[1]), np.float32(weights[0]))
    return np.where(has_id, np.float32(0.0), new).astype(np.float32)


def simulated_new_users(
    train: sp.csr_matrix,
    validation: sp.spmatrix | None,
    times: np.ndarray | None,
    *,
    k: int = SIMULATED_HISTORY,
    max_users: int = MAX_SIMULATED_USERS,
    seed: int = 0,
) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]:
    """(users, revealed, rest): training users replayed as newcomers who reveal their first k items.

    Users with more than k training items are sampled (at most `max_users`, seeded); `revealed`
    (n, n_items) holds each one's first k training items by `times` (the first-event time of each
    entry of `train`, sorted indices; ties and missing times broken at random), `rest` the
    other training items plus their validation items: what the newcomer goes on to like.
    """
    train = sp.csr_matrix(train, dtype=np.float32)
    train.sort_indices()
    rng = np.random.default_rng([seed, 0x9A1])
    eligible = np.flatnonzero(np.diff(train.indptr) > k)
    if len(eligible) > max_users:
        eligible = np.sort(rng.choice(eligible, size=max_users, replace=False))
    later = train[eligible].tolil()
    if validation is not None:
        later = (sp.csr_matrix(later) + (sp.csr_matrix(validation)[eligible] > 0)).tolil()
    revealed = sp.lil_matrix(later.shape, dtype=np.float32)
    for row, user in enumerate(eligible):
        lo, hi = train.indptr[user], train.indptr[user + 1]
        when = np.zeros(hi - lo) if times is None else times[lo:hi]
        first = train.indices[lo:hi][np.lexsort((rng.random(hi - lo), when))[:k]]
        revealed[row, first] = 1.0
        later[row, first] = 0.0
    rest = sp.csr_matrix(later, dtype=np.float32)
    rest.data[:] = 1.0
    rest.eliminate_zeros()
    return eligible, revealed.tocsr(), rest


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
    model: TwoTower, table: torch.Tensor, popularity: np.ndarray, training: TrainingData, train: TrainConfig
) -> tuple[tuple[float, float], dict[str, dict[float, float]]]:
    """(attributes only, with history) weights, chosen on training users replayed as new, and their curves.

    `simulated_new_users` samples them; each is scored without its id, with no history and with
    its first interactions, against what it went on to like (`table`: item vectors without the
    prior coordinate).
    """
    users, revealed, rest = simulated_new_users(training.train, training.validation, training.train_times, seed=train.seed)
    empty = sp.csr_matrix(revealed.shape, dtype=np.float32)
    weights: list[float] = []
    curves: dict[str, dict[float, float]] = {}
    for name, history, relevant in (("no-history", empty, revealed + rest), ("onboarding", revealed, rest)):
        chunks = _id_less_scores(model, table, training.users, users, history, relevant, train)
        weight, curves[name] = best_weight(chunks, popularity, k=train.eval_k, metric=train.eval_metric)
        weights.append(weight)
    return (weights[0], weights[1]), curves


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

"""Validation during training: the rankings early stopping watches, and their Recall@k."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from thaw.models.tower_data import item_table, user_table
from thaw.models.two_tower import TwoTower

if TYPE_CHECKING:
    from thaw.training.loop import TrainConfig, TrainingData


@dataclass(frozen=True)
class ValidationView:
    """One validation ranking: users with a scoring-time history, their held-out items, candidates."""

    name: str
    users: np.ndarray  # (n,) user indices
    history: sp.csr_matrix  # (n, n_items) what each user has at scoring time
    relevant: sp.csr_matrix  # (n, n_items) held-out positives
    candidates: np.ndarray  # item indices ranked


def validation_views(
    data: TrainingData, *, include_warm: bool = False, onboarding_k: int = 3, seed: int = 0
) -> list[ValidationView]:
    """The validation rankings early stopping watches.

    With `validation_items`, one ranking over them. Otherwise the cold part of the validation
    decides, as the harness scores it: warm users' pairs on non-warm items rank among non-warm
    items (cold-item); non-warm users rank all items with no history (cold-user; among non-warm
    items when their pairs are mostly there: cold-both) and with `onboarding_k` of their
    validation items revealed (onboarding). Warm pairs rank among warm items when there
    is no cold part, or always with `include_warm`.
    """
    if data.validation is None or data.validation.nnz == 0:
        return []
    validation = sp.csr_matrix(data.validation, dtype=np.float32)
    train = data.train.tocsr()
    n_users, n_items = train.shape
    every = np.arange(n_items)
    if data.validation_items is not None:
        return [_view("validation", validation, train, np.asarray(data.validation_items, np.int64))]
    warm_rows = sp.diags(data.warm_users.astype(np.float32))
    cold_rows = sp.diags((~data.warm_users).astype(np.float32))
    cold_cols = sp.diags((~data.warm_items).astype(np.float32))
    views = []
    # Warm users' pairs on items without training pairs: cold-item, ranked among those items.
    on_cold_items = _nonzero(warm_rows @ validation @ cold_cols)
    if on_cold_items.nnz:
        views.append(_view("cold-item", on_cold_items, train, np.flatnonzero(~data.warm_items)))
    of_cold_users = _nonzero(cold_rows @ validation)
    if of_cold_users.nnz:
        # Mostly on cold items too (cold-both): rank among cold items, as the harness does.
        both = _nonzero(of_cold_users @ cold_cols).nnz > of_cold_users.nnz / 2
        candidates = np.flatnonzero(~data.warm_items) if both else every
        empty = sp.csr_matrix((n_users, n_items), dtype=np.float32)
        views.append(_view("cold-both" if both else "cold-user", of_cold_users, empty, candidates))
        revealed, rest = _reveal(of_cold_users, onboarding_k, np.random.default_rng(seed))
        if rest.nnz and not both:
            views.append(_view(f"onboarding-{onboarding_k}", rest, (train + revealed).tocsr(), every))
    if include_warm or not views:
        warm = _nonzero(warm_rows @ validation @ sp.diags(data.warm_items.astype(np.float32)))
        if warm.nnz:
            views.append(_view("warm", warm, train, np.flatnonzero(data.warm_items)))
    return views


def _nonzero(matrix: sp.spmatrix) -> sp.csr_matrix:
    out = sp.csr_matrix(matrix)
    out.eliminate_zeros()
    return out


def _view(
    name: str, relevant: sp.csr_matrix, history: sp.csr_matrix, candidates: np.ndarray
) -> ValidationView:
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    return ValidationView(name, users, history[users], relevant[users], candidates)


def _reveal(pairs: sp.csr_matrix, k: int, rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split each row into k random revealed items and the rest (rows with <= k items reveal none)."""
    revealed, rest = pairs.copy().tolil(), pairs.copy().tolil()
    for row in range(pairs.shape[0]):
        items = pairs.indices[pairs.indptr[row] : pairs.indptr[row + 1]]
        if len(items) <= k:
            rest[row, items] = 0
            revealed[row, items] = 0
            continue
        shown = rng.choice(items, size=k, replace=False)
        rest[row, shown] = 0
        revealed[row, np.setdiff1d(items, shown)] = 0
    out = revealed.tocsr(), rest.tocsr()
    for m in out:
        m.eliminate_zeros()
    return out


def evaluate(
    model: TwoTower, data: TrainingData, config: TrainConfig, views: list[ValidationView]
) -> dict[str, float]:
    """Validation `config.eval_metric`@k of each view (history items excluded from the ranking)."""
    items = item_table(model, data.items, data.warm_items)
    out = {}
    for view in views:
        keep = data.warm_users[view.users]
        vectors = user_table(
            model, items, view.history, data.users, view.users, view.users, keep,
            max_history=config.max_eval_history,
        )
        scores = (vectors @ items[torch.from_numpy(view.candidates)].T).numpy()  # (n_users, n_candidates)
        seen = view.history[:, view.candidates]
        scores[seen.nonzero()] = -np.inf
        relevant = view.relevant[:, view.candidates].tocsr()
        out[view.name] = ranking_metric(scores, relevant, config.eval_k, config.eval_metric)
    return out


def ranking_metric(scores: np.ndarray, relevant: sp.csr_matrix, k: int, metric: str) -> float:
    """Mean Recall@k (hits / |relevant|) or NDCG@k (binary gains) over rows with a relevant item."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    rows = np.arange(scores.shape[0])[:, None]
    top = top[rows, np.argsort(-scores[rows, top], axis=1, kind="stable")]  # best first
    picked = relevant[rows, top]  # sparse or dense depending on the scipy version
    gains = ((picked.toarray() if sp.issparse(picked) else np.asarray(picked)) > 0).astype(np.float64)
    n_relevant = np.diff(relevant.indptr)
    has = n_relevant > 0
    if not has.any():
        return 0.0
    if metric == "recall":
        values = gains.sum(axis=1) / np.maximum(n_relevant, 1)
    else:
        discounts = 1.0 / np.log2(np.arange(2, k + 2))
        ideal = np.array([discounts[: min(n, k)].sum() for n in n_relevant])
        values = (gains @ discounts) / np.maximum(ideal, 1e-12)
    return float(np.mean(values[has]))

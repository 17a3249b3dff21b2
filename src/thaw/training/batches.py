"""Training batches for the two-tower model: users, their history/target split and the candidates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from thaw.training.loop import TrainConfig

WARM, HISTORY, ONBOARDING, COLD = range(4)


@dataclass(frozen=True)
class Batch:
    """One step's worth of examples; item indices are global, history indices local to `candidates`."""

    users: np.ndarray  # (B,) user indices
    candidates: np.ndarray  # (C,) item indices scored in this batch
    history_index: np.ndarray  # (B, L) int64 into candidates
    history_weight: np.ndarray  # (B, L) float32 event strength, 0 = padding
    keep_user_id: np.ndarray  # (B,) float32, 1 where the user's id part is used
    positives: np.ndarray  # (B, C) bool targets
    excluded: np.ndarray  # (B, C) bool other training items of the user (neither pos nor neg)


class BatchSampler:
    """Draws batches of warm users from a seeded generator; one epoch visits every user once."""

    def __init__(
        self,
        train: sp.csr_matrix,
        warm_items: np.ndarray,
        config: TrainConfig,
        rng: np.random.Generator,
        times: np.ndarray | None = None,
    ) -> None:
        self.train = train.tocsr()
        if not self.train.has_sorted_indices:
            raise ValueError("train must have sorted indices (times align with its entries)")
        # (nnz,) time of each training pair, aligned with train.data; None: no order known.
        self.times = times
        self.config = config
        self.rng = rng
        self.users = np.flatnonzero(np.diff(self.train.indptr) > 0)
        self.warm_items = np.flatnonzero(warm_items & (np.diff(self.train.tocsc().indptr) > 0))
        weights = np.asarray(config.user_modes, dtype=np.float64)
        self.mode_p = weights / weights.sum()

    @property
    def n_users(self) -> int:
        return len(self.users)

    def epoch(self) -> Iterator[Batch]:
        """Batches covering every user with training interactions once, in random order."""
        order = self.rng.permutation(self.users)
        size = self.config.batch_users
        for start in range(0, len(order), size):
            yield self.batch(order[start : start + size])

    def batch(self, users: np.ndarray) -> Batch:
        """The batch of `users`: a random history/target split and role for each."""
        cfg, rng = self.config, self.rng
        modes = rng.choice(len(self.mode_p), size=len(users), p=self.mode_p)
        histories, history_weights, targets = [], [], []
        for user, mode in zip(users, modes, strict=True):
            lo, hi = self.train.indptr[user], self.train.indptr[user + 1]
            order = rng.permutation(hi - lo)
            items, weights = self.train.indices[lo:hi][order], self.train.data[lo:hi][order]
            n = len(items)
            if mode == ONBOARDING and self.times is not None and n > 1:
                # A newcomer's history is their *first* interactions, which are not a random
                # sample of their taste: learn from the earliest ones (random among ties).
                by_time = np.lexsort((rng.random(n), self.times[lo:hi]))
                k = min(int(rng.integers(1, cfg.onboarding_max + 1)), n - 1)
                later = rng.permutation(by_time[k:])[: cfg.max_targets]
                targets.append(self.train.indices[lo:hi][later])
                histories.append(self.train.indices[lo:hi][by_time[:k]])
                history_weights.append(self.train.data[lo:hi][by_time[:k]])
                continue
            if mode == COLD or n == 1:
                n_targets = min(n, cfg.max_targets)
                n_history = 0 if mode == COLD else n - n_targets
            else:
                n_targets = int(np.clip(round(cfg.target_fraction * n), 1, cfg.max_targets))
                n_history = n - n_targets
                if mode == ONBOARDING:
                    n_history = min(n_history, int(rng.integers(1, cfg.onboarding_max + 1)))
                n_history = min(n_history, cfg.max_history)
            targets.append(items[:n_targets])
            histories.append(items[n_targets : n_targets + n_history])
            history_weights.append(weights[n_targets : n_targets + n_history])
        if len(self.warm_items) <= cfg.full_softmax_items:
            extra = self.warm_items  # every warm item competes: no sampling bias towards popular ones
        elif cfg.n_random_negatives and len(self.warm_items):
            size = min(cfg.n_random_negatives, len(self.warm_items))
            extra = rng.choice(self.warm_items, size=size, replace=False)
        else:
            extra = np.zeros(0, np.int64)
        candidates = np.unique(np.concatenate([*targets, *histories, extra]).astype(np.int64))
        length = max((len(h) for h in histories), default=0)
        history_index = np.zeros((len(users), length), np.int64)
        history_weight = np.zeros((len(users), length), np.float32)
        positives = np.zeros((len(users), len(candidates)), bool)
        for row, (hist, weight, target) in enumerate(zip(histories, history_weights, targets, strict=True)):
            history_index[row, : len(hist)] = np.searchsorted(candidates, hist)
            # A strength of 0 would read as padding: keep every real event visible.
            history_weight[row, : len(hist)] = np.maximum(weight, 1e-6)
            positives[row, np.searchsorted(candidates, target)] = True
        seen = (self.train[users][:, candidates] != 0).toarray()
        keep_user_id = ((modes == WARM)).astype(np.float32)
        return Batch(
            users=users,
            candidates=candidates,
            history_index=history_index,
            history_weight=history_weight,
            keep_user_id=keep_user_id,
            positives=positives,
            excluded=seen & ~positives,
        )

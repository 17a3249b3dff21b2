"""Random scores: the floor every model must clear."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from thaw.models.base import FitData


class RandomRecommender:
    """Uniform random scores, reproducible per (seed, user) whatever the batching."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, data: FitData) -> Self:
        """Remember the catalogue size; nothing is learned."""
        self.n_items_ = data.n_items
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """(len(users), n_items) uniform scores; a user always gets the same row."""
        out = np.empty((len(users), self.n_items_), np.float32)
        for row, user in enumerate(np.asarray(users, np.int64)):
            out[row] = np.random.default_rng([self.seed, int(user)]).random(self.n_items_)
        return out

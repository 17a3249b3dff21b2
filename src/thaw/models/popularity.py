"""Most popular items first, counted on training interactions only."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from thaw.models.base import FitData


class PopularityRecommender:
    """Scores every item by how many training users interacted with it (cold items score 0)."""

    name = "popularity"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, data: FitData) -> Self:
        """Count distinct training users per item; validation and test are never read."""
        positive = data.train > 0
        self.counts_ = np.asarray(positive.sum(axis=0), np.float32).ravel()  # (n_items,) users per item
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """The same popularity row for every user."""
        return np.broadcast_to(self.counts_, (len(users), len(self.counts_))).copy()

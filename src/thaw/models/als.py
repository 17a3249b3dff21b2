"""Implicit-feedback ALS from the `implicit` library: the warm collaborative-filtering reference.

Items without training interactions get a zero vector (ALS learns nothing about them, so they
rank by the harness's seeded tie-break, i.e. at random). A user whose scoring-time history
differs from their training row (onboarding reveals, a new user) gets factors recomputed from
that history with implicit's `recalculate_user` (a least-squares solve against the fixed item
factors, no retraining); an empty history gives a zero vector.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from thaw.models.base import FitData


class ALSRecommender:
    """`implicit.cpu.als.AlternatingLeastSquares` behind the Recommender contract."""

    name = "als"

    def __init__(
        self,
        seed: int = 0,
        n_factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        n_iterations: int = 15,
        n_threads: int = 1,
    ) -> None:
        self.seed = seed
        self.n_factors = n_factors
        self.regularization = regularization
        self.alpha = alpha
        self.n_iterations = n_iterations
        self.n_threads = n_threads

    def fit(self, data: FitData) -> Self:
        """Factorise the training matrix (confidence = 1 + alpha * strength)."""
        if self.n_factors < 1 or self.n_iterations < 1 or self.n_threads < 1:
            raise ValueError("n_factors, n_iterations and n_threads must be >= 1")
        if self.regularization < 0 or self.alpha <= 0:
            raise ValueError("regularization must be >= 0 and alpha > 0")
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        train = sp.csr_matrix(data.train, dtype=np.float32)
        # implicit runs its own threads; a BLAS thread pool on top of them only contends.
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=self.n_factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.n_iterations,
                num_threads=self.n_threads,
                random_state=self.seed,
            )
            model.fit(train, show_progress=False)
        # Nothing was learned about entities without training pairs: no vector, not init noise.
        model.item_factors[~data.warm_items] = 0.0
        model.user_factors[~data.warm_users] = 0.0
        self.model_ = model
        self.train_ = train
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """(len(users), n_items) dot products; factors recomputed where history != training row."""
        users = np.asarray(users, np.int64)
        history = sp.csr_matrix(history, dtype=np.float32)
        factors = np.asarray(self.model_.user_factors[users], np.float32).copy()
        changed = np.array([not _same_row(self.train_, u, history, r) for r, u in enumerate(users)], bool)
        if changed.any():
            rows = np.flatnonzero(changed)
            factors[rows] = self.model_.recalculate_user(users[rows], history[rows])
        return factors @ np.asarray(self.model_.item_factors, np.float32).T


def _same_row(a: sp.csr_matrix, i: int, b: sp.csr_matrix, j: int) -> bool:
    """Whether row i of `a` and row j of `b` hold the same entries."""
    sa, ea, sb, eb = a.indptr[i], a.indptr[i + 1], b.indptr[j], b.indptr[j + 1]
    if ea - sa != eb - sb:
        return False
    ia, ib = a.indices[sa:ea], b.indices[sb:eb]
    oa, ob = np.argsort(ia), np.argsort(ib)
    return bool(np.array_equal(ia[oa], ib[ob]) and np.allclose(a.data[sa:ea][oa], b.data[sb:eb][ob]))

"""Content-based KNN: items scored by cosine similarity to the items a user interacted with.

Item vector = [text block, attribute block], each L2-normalised: the text block is the
pretrained `ItemContent.text_vectors` when present (and `text="auto"`), else TF-IDF over
`ItemContent.documents()`; the attribute block one-hot encodes `ItemContent.attributes`
(interaction-derived attributes such as tags are not in ItemContent and never used).

score(u, i) = Σ_blocks w_b · cos_b(i, ·) averaged over u's history, weighted by interaction
strength — the mean cosine similarity of i to the history items (all history items are the
neighbours; the mean equals a dot product with the user's mean profile). A user with no history
borrows one: the similarity-weighted history of the `n_user_neighbors` warm users closest in
user-attribute space (cosine), or of all warm users when there are no user attributes. A cold
user with a text vector in the item text space is scored by cosine to that instead.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from thaw.models.base import FitData
from thaw.models.features import attribute_matrix, l2_rows, tfidf_matrix

_TEXT_MODES = ("auto", "tfidf", "vectors")


class ContentKNN:
    """Mean cosine similarity to the history (see module docstring)."""

    name = "content-knn"

    def __init__(
        self,
        seed: int = 0,
        text: str = "auto",
        attribute_weight: float = 1.0,
        n_user_neighbors: int = 50,
        max_features: int = 50_000,
    ) -> None:
        self.seed = seed
        self.text = text
        self.attribute_weight = attribute_weight
        self.n_user_neighbors = n_user_neighbors
        self.max_features = max_features

    def fit(self, data: FitData) -> Self:
        """Build item vectors (fitted on warm items only) and the warm users' histories."""
        if self.text not in _TEXT_MODES:
            raise ValueError(f"text must be one of {_TEXT_MODES}, got {self.text!r}")
        if self.attribute_weight < 0 or self.n_user_neighbors < 1:
            raise ValueError("attribute_weight must be >= 0 and n_user_neighbors >= 1")
        vectors = data.items.text_vectors
        if self.text == "vectors" and vectors is None:
            raise ValueError("text='vectors' needs ItemContent.text_vectors")
        self.uses_vectors_ = vectors is not None and self.text != "tfidf"
        if self.uses_vectors_:
            text_block: sp.csr_matrix | np.ndarray = l2_rows(np.asarray(vectors, np.float32))
        else:
            text_block = tfidf_matrix(
                data.items.documents(), data.warm_items, max_features=self.max_features
            )
        # Attribute categories are fitted on warm items so nothing is learned from held-out ones.
        attr_block = attribute_matrix(data.items.attributes, data.warm_items)
        self.blocks_ = [(1.0, text_block)]
        if attr_block.shape[1] and self.attribute_weight > 0:
            self.blocks_.append((self.attribute_weight, attr_block))

        train = sp.csr_matrix(data.train, dtype=np.float32, copy=True)
        train.data = np.maximum(train.data, 0.0)  # strengths are weights: never negative
        train.eliminate_zeros()
        self.warm_user_index_ = np.flatnonzero(np.diff(train.indptr) > 0)
        self.warm_history_ = _row_stochastic(train[self.warm_user_index_])  # (n_warm, n_items)
        self.user_attributes_ = attribute_matrix(data.users.attributes, data.warm_users)
        self.user_text_ = None
        user_vectors = data.users.text_vectors
        if self.uses_vectors_ and user_vectors is not None and user_vectors.shape[1] == vectors.shape[1]:
            self.user_text_ = l2_rows(np.asarray(user_vectors, np.float32))
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """(len(users), n_items) mean cosine similarity to the (possibly borrowed) history."""
        users = np.asarray(users, np.int64)
        history = sp.csr_matrix(history, dtype=np.float32)
        weights = _row_stochastic(history).tocsr()
        empty = np.flatnonzero(np.diff(history.indptr) == 0)
        text_only = np.zeros(len(users), bool)
        if len(empty) and self.user_text_ is not None:
            text_only[empty] = np.linalg.norm(self.user_text_[users[empty]], axis=1) > 0
        borrow = empty[~text_only[empty]]
        weight_rows = weights.toarray() if len(borrow) else None
        if len(borrow):
            weight_rows[borrow] = self._borrowed_history(users[borrow])
            weights = weight_rows
        scores = np.zeros((len(users), weights.shape[1]), np.float32)
        for w, block in self.blocks_:
            profile = _dense(block.T @ weights.T).T  # (b, dim): mean history vector
            scores += w * _dense(block @ profile.T).T
        if text_only.any():
            text = self.blocks_[0][1]
            scores[text_only] = self.user_text_[users[text_only]] @ text.T
        return scores

    def _borrowed_history(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items) a history mixed from the nearest warm users by attributes."""
        n_warm = len(self.warm_user_index_)
        if n_warm == 0:
            return np.zeros((len(users), self.warm_history_.shape[1]), np.float32)
        sims = _dense(self.user_attributes_[users] @ self.user_attributes_[self.warm_user_index_].T)
        mix = np.zeros_like(sims)  # (b, n_warm) neighbour weights
        k = min(self.n_user_neighbors, n_warm)
        for row in range(len(users)):
            top = np.argpartition(-sims[row], k - 1)[:k]
            top = top[sims[row, top] > 0]
            if len(top):
                mix[row, top] = sims[row, top]
            else:  # no attribute overlap: every warm user counts the same
                mix[row] = 1.0
        mix /= mix.sum(axis=1, keepdims=True)
        return np.asarray(self.warm_history_.T @ mix.T).T.astype(np.float32)


class ContentKNNTfidf(ContentKNN):
    """ContentKNN that always uses TF-IDF text, even when pretrained vectors are present."""

    name = "content-knn-tfidf"

    def __init__(self, seed: int = 0, **options: object) -> None:
        options.setdefault("text", "tfidf")
        super().__init__(seed=seed, **options)  # type: ignore[arg-type]


def _row_stochastic(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to sum 1 (empty rows stay zero)."""
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.where(sums > 0, 1.0 / np.where(sums > 0, sums, 1.0), 0.0).astype(np.float32)
    return sp.diags(scale) @ matrix


def _dense(matrix: sp.spmatrix | np.ndarray) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)

"""The contract every recommender follows: `fit(FitData)` then `score(users, history)`.

Models see arrays, never the store. Content (titles, texts, attributes, pretrained text vectors)
is known for every user and item, cold ones included; interactions only from the training split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

import numpy as np
import scipy.sparse as sp

from thaw.data.dataset import EventArrays, ItemContent, UserContent


@dataclass(frozen=True)
class FitData:
    """Everything a model may learn from.

    `train` holds interaction strengths of training events only; `warm_users` / `warm_items`
    mark entities that have training interactions (everything else is cold: content only).
    `validation` is for early stopping and model selection, never the test split.
    """

    train: sp.csr_matrix  # (n_users, n_items) float32
    items: ItemContent
    users: UserContent
    warm_users: np.ndarray  # (n_users,) bool
    warm_items: np.ndarray  # (n_items,) bool
    train_events: EventArrays | None = None  # the raw training events (types, values, times)
    validation: sp.csr_matrix | None = None  # (n_users, n_items) held-out positives
    validation_items: np.ndarray | None = None  # candidate items when ranking validation
    seed: int = 0

    def __post_init__(self) -> None:
        n_users, n_items = self.train.shape
        if len(self.items) != n_items:
            raise ValueError(f"items has {len(self.items)} rows, train has {n_items} columns")
        if len(self.users) != n_users:
            raise ValueError(f"users has {len(self.users)} rows, train has {n_users} rows")
        if self.warm_users.shape != (n_users,) or self.warm_items.shape != (n_items,):
            raise ValueError("warm_users / warm_items must be boolean vectors over users / items")
        if self.validation is not None and self.validation.shape != self.train.shape:
            raise ValueError("validation must have the shape of train")

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]


@runtime_checkable
class Recommender(Protocol):
    """A model the harness, the CLI and the server can all drive.

    `score(users, history)` returns a (len(users), n_items) float array; higher is better.
    `history` is a (len(users), n_items) CSR matrix of what the model may know about those users
    at scoring time: their training rows for warm users, the revealed interactions of an
    onboarding user, nothing for a brand-new user. Content of any user or item is in FitData.
    """

    name: str

    def fit(self, data: FitData) -> Self: ...

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray: ...


@runtime_checkable
class EmbeddingModel(Protocol):
    """A recommender whose score is a dot product of a user vector and an item vector.

    This is what serving needs: vectors for items posted a second ago (content only, plus an id
    part for items the model was trained on) and for users from their attributes and whatever
    history they have right now, without retraining.
    """

    name: str

    def encode_items(self, content: ItemContent, item_ids: list[str]) -> np.ndarray:
        """(n, d) float32 item vectors; `item_ids` lets warm items use their learned id part."""
        ...

    def encode_users(
        self,
        content: UserContent,
        user_ids: list[str],
        history: sp.csr_matrix,
        item_vectors: np.ndarray,
    ) -> np.ndarray:
        """(n, d) float32 user vectors.

        `history` is (n, n_catalogue) interaction strengths whose columns index rows of
        `item_vectors` (the live catalogue, as returned by `encode_items`).
        """
        ...

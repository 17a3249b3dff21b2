"""The pieces of thaw's model that turn content and training data into tower inputs.

Attribute encoders fitted on training rows, L2-normalised text vectors, first-event times of
training pairs, ALS factors to start the id parts from, and a torch thread-count guard.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from thaw.data.dataset import EventArrays
from thaw.models.base import FitData
from thaw.models.two_tower import TwoTowerConfig
from thaw.training.loop import TrainConfig


def pair_times(train: sp.csr_matrix, events: EventArrays) -> np.ndarray:
    """(nnz,) the first event time of each (user, item) entry of `train` (sorted indices); 0 if none."""
    if len(events) == 0:
        return np.zeros(train.nnz, np.int64)
    n_items = train.shape[1]
    keys = events.user.astype(np.int64) * n_items + events.item.astype(np.int64)
    order = np.lexsort((events.time, keys))
    keys, times = keys[order], events.time[order]
    first = np.r_[True, keys[1:] != keys[:-1]]  # the earliest event of each pair
    keys, times = keys[first], times[first]
    rows = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr))
    wanted = rows * n_items + train.indices.astype(np.int64)
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[at] == wanted, times[at], 0).astype(np.int64)


def als_factors(data: FitData, model: TwoTowerConfig, train: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Implicit-ALS user and item factors of the training matrix (cold rows zero), id_dim wide."""
    from thaw.models.als import ALSRecommender

    als = ALSRecommender(
        seed=train.seed, n_factors=model.id_dim, regularization=model.als_regularization,
        alpha=model.als_alpha, n_threads=train.threads,
    ).fit(data)
    return np.asarray(als.model_.user_factors), np.asarray(als.model_.item_factors)


def fit_attributes(attributes: list[dict[str, Any]], rows: np.ndarray) -> Any:
    """An attribute encoder fitted on the training rows, or None when there are no attributes."""
    if not any(attributes):
        return None
    from thaw.encoders.features import AttributeEncoder

    return AttributeEncoder().fit(attributes, rows=np.flatnonzero(rows))


def transform_attributes(
    encoder: Any, attributes: list[dict[str, Any]]
) -> tuple[sp.csr_matrix | None, np.ndarray | None]:
    if encoder is None:
        return None, None
    features = encoder.transform(attributes)
    cat = features.categorical if features.categorical is not None and features.categorical.shape[1] else None
    num = features.numeric if features.numeric is not None and features.numeric.shape[1] else None
    return (None if cat is None else sp.csr_matrix(cat, dtype=np.float32),
            None if num is None else np.asarray(num, dtype=np.float32))


def normalized(text: np.ndarray | None) -> np.ndarray | None:
    if text is None:
        return None
    text = np.asarray(text, dtype=np.float32)
    norms = np.linalg.norm(text, axis=1, keepdims=True)
    return np.ascontiguousarray(text / np.maximum(norms, 1e-12), dtype=np.float32)


def width(matrix: sp.csr_matrix | None) -> int:
    return 0 if matrix is None else matrix.shape[1]


class torch_threads:
    """Run torch with `n` intra-op threads, restoring the previous count afterwards."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        self.previous = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.previous)

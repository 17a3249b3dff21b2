"""What the two towers read and how whole tables of vectors are computed from it.

`EntityFeatures` holds content arrays (text vectors, categorical multi-hot, numeric) and turns rows
into a `FeatureBatch` of tensors; `item_table` / `user_table` run the towers over many items or
users in chunks; `whitening` fits the text-space normalisation the item tower applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

if TYPE_CHECKING:
    from thaw.models.two_tower import TwoTower


@dataclass(frozen=True)
class EntityFeatures:
    """Content features of users or items as arrays: row i is entity i."""

    text: np.ndarray | None = None  # (n, t) float32
    categorical: sp.csr_matrix | None = None  # (n, n_categories) multi-hot
    numeric: np.ndarray | None = None  # (n, m) float32, standardised

    def __post_init__(self) -> None:
        sizes = {len(a) if not sp.issparse(a) else a.shape[0] for a in self._arrays()}
        if len(sizes) > 1:
            raise ValueError(f"feature arrays disagree on the number of rows: {sorted(sizes)}")

    def _arrays(self) -> list[np.ndarray | sp.csr_matrix]:
        return [a for a in (self.text, self.categorical, self.numeric) if a is not None]

    def __len__(self) -> int:
        arrays = self._arrays()
        return 0 if not arrays else (arrays[0].shape[0])

    def rows(self, index: np.ndarray) -> FeatureBatch:
        """Tensors for the entities at `index`."""
        text = None if self.text is None else torch.from_numpy(self.text[index])
        numeric = None if self.numeric is None else torch.from_numpy(self.numeric[index])
        cat = None
        if self.categorical is not None:
            sub = self.categorical[index]
            counts = np.diff(sub.indptr)
            # Mean of the embeddings of the active categories: weight 1/count for each.
            weights = np.repeat(1.0 / np.maximum(counts, 1), counts).astype(np.float32)
            cat = (
                torch.from_numpy(sub.indices.astype(np.int64)),
                torch.from_numpy(sub.indptr[:-1].astype(np.int64)),
                torch.from_numpy(weights),
            )
        return FeatureBatch(text, cat, numeric, len(index))


@dataclass(frozen=True)
class FeatureBatch:
    """Content features of a batch of entities as tensors."""

    text: Tensor | None
    categorical: tuple[Tensor, Tensor, Tensor] | None  # (indices, offsets, per-sample weights)
    numeric: Tensor | None
    n: int


def history_arrays(
    history: sp.csr_matrix, rows: np.ndarray, max_history: int
) -> tuple[np.ndarray, np.ndarray]:
    """Padded (len(rows), L) item indices and strengths of `history` rows, strongest first.

    Rows longer than `max_history` keep their strongest (then latest-indexed) items.
    """
    lengths = np.minimum(np.diff(history.indptr)[rows], max_history)
    length = int(lengths.max()) if len(rows) else 0
    index = np.zeros((len(rows), length), np.int64)
    weight = np.zeros((len(rows), length), np.float32)
    for out, row in enumerate(rows):
        lo, hi = history.indptr[row], history.indptr[row + 1]
        items, strengths = history.indices[lo:hi], history.data[lo:hi]
        if hi - lo > max_history:
            keep = np.argsort(-strengths, kind="stable")[:max_history]
            items, strengths = items[keep], strengths[keep]
        index[out, : len(items)] = items
        weight[out, : len(items)] = np.maximum(strengths, 1e-6)
    return index, weight


@torch.no_grad()
def item_table(
    model: TwoTower, features: EntityFeatures, keep_id: np.ndarray, chunk: int = 4096
) -> torch.Tensor:
    """Item vectors (n, width + 1) of every item; `keep_id` (n,) bool says who gets an id part."""
    model.eval()
    parts = []
    for start in range(0, len(keep_id), chunk):
        index = np.arange(start, min(start + chunk, len(keep_id)))
        vectors = model.item_content(features.rows(index))
        # Only items with an id part are looked up: the others may lie past the id table (items
        # added after training, encoded in a batch larger than the training catalogue).
        with_id = np.flatnonzero(keep_id[index])
        if len(with_id):
            ids = torch.from_numpy(index[with_id].astype(np.int64))
            vectors = vectors.index_add(0, torch.from_numpy(with_id), model.item_id_part(ids))
        parts.append(vectors)
    if not parts:
        return torch.zeros(0, model.width + 1)
    return torch.cat(parts)


@torch.no_grad()
def user_table(
    model: TwoTower,
    items: torch.Tensor,
    history: sp.csr_matrix,
    features: EntityFeatures,
    feature_rows: np.ndarray,
    id_rows: np.ndarray,
    keep_id: np.ndarray,
    *,
    max_history: int,
    chunk: int = 128,
) -> torch.Tensor:
    """User vectors (n, width + 1).

    Row r takes its history from `history[r]` (columns index `items`), its content from
    `features` row `feature_rows[r]` and, where `keep_id[r]`, the id part of user `id_rows[r]`.
    """
    model.eval()
    out = torch.zeros(history.shape[0], model.width + 1)
    lengths = np.diff(history.indptr)
    order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        index, weight = history_arrays(history, rows, max_history)
        out[torch.from_numpy(rows)] = model.user_vectors(
            items,
            torch.from_numpy(index),
            torch.from_numpy(weight),
            features.rows(np.asarray(feature_rows)[rows]),
            torch.from_numpy(np.asarray(id_rows, dtype=np.int64)[rows]),
            torch.from_numpy(np.asarray(keep_id, dtype=np.float32)[rows]),
        )
    return out


def whitening(vectors: np.ndarray, exponent: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean, transform) that centre `vectors` and shrink their dominant directions.

    Sentence-encoder spaces are anisotropic: a few directions, shared by most texts, dominate
    cosine similarities. Each principal direction with singular value s is rescaled by
    (s / s_max) ** -exponent (exponent 1 = full whitening, 0 = centring only); directions without
    variance in the training vectors are dropped; the result is scaled so training vectors have
    unit mean squared norm. Needs more vectors than dimensions (see `WHITENING_MIN_ROWS`).
    """
    x = np.asarray(vectors, np.float64)
    if x.shape[0] < x.shape[1] + 1:
        raise ValueError(f"whitening needs more vectors than dimensions, got {x.shape}")
    mean = x.mean(axis=0)
    centred = x - mean
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    alive = singular > singular.max() * 1e-4  # constant directions carry nothing but noise
    scale = np.zeros_like(singular)
    scale[alive] = (singular[alive] / singular.max()) ** (-exponent)
    transform = vt.T @ np.diag(scale) @ vt
    norm = np.sqrt(np.mean(np.sum((centred @ transform) ** 2, axis=1)))
    return mean.astype(np.float32), (transform / max(norm, 1e-12)).astype(np.float32)


WHITENING_MIN_ROWS = 4
"""Whiten only with at least this many training items per text dimension (a stable covariance)."""

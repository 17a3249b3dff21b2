"""Vector indexes over catalogue rows: exact dot-product top-k now, an interface FAISS can fill later.

Rows are the catalogue's integer positions; an index never sees external ids. Readers never
lock: a search works on the arrays it picked up when it started, and writers only append rows
past that point or flip a row's `alive` flag.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol, runtime_checkable

import faiss
import numpy as np


@runtime_checkable
class VectorIndex(Protocol):
    """Maximum inner-product search over rows of a growing catalogue."""

    dim: int

    def add(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or overwrite `vectors` (n, dim) at catalogue positions `rows` (n,)."""
        ...

    def remove(self, rows: np.ndarray) -> None:
        """Stop returning these rows."""
        ...

    def search(
        self, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows and scores per query: (b, k) int64 and (b, k) float32, -1 / -inf padded."""
        ...

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of `rows`: (n, dim) float32."""
        ...

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Scores of one query against every row: (n_rows,) float32, -inf for removed rows."""
        ...

    def matrix(self) -> np.ndarray:
        """Every row's vector: (n_rows, dim) (an ANN index reconstructs or keeps a copy)."""
        ...

    def __len__(self) -> int:
        """Live (not removed) rows."""
        ...


CHANGE_LOG = 4096  # writes whose rows an exact index remembers (kept_ranks.py brings lists up to date with them)


class ExactIndex:
    """Brute-force dot product in NumPy: exact, and fast enough for ~10^5 items on one core.

    Every write bumps `generation` and logs its rows, so a ranked list computed at one generation
    can be brought up to date by rescoring only the rows written since (`changed_since`).
    """

    def __init__(self, dim: int, *, capacity: int = 1024) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self._matrix = np.zeros((max(capacity, 1), dim), np.float32)  # (capacity, dim)
        self._alive = np.zeros(max(capacity, 1), bool)
        self._n_rows = 0  # one past the highest row ever added
        self._lock = threading.Lock()
        self.generation = 0  # writes so far
        self._changes: deque[tuple[int, np.ndarray]] = deque(maxlen=CHANGE_LOG)  # (generation, rows written)

    def add(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        rows = np.asarray(rows, np.int64)
        vectors = np.asarray(vectors, np.float32)
        if vectors.shape != (len(rows), self.dim):
            raise ValueError(f"vectors must be ({len(rows)}, {self.dim}), got {vectors.shape}")
        if len(rows) == 0:
            return
        if rows.min() < 0:
            raise ValueError("rows must be >= 0")
        with self._lock:
            needed = int(rows.max()) + 1
            if needed > len(self._matrix):
                # Grow into fresh arrays: a concurrent search keeps the old ones, which stay valid.
                capacity = max(needed, 2 * len(self._matrix))
                matrix = np.zeros((capacity, self.dim), np.float32)
                matrix[: self._n_rows] = self._matrix[: self._n_rows]
                alive = np.zeros(capacity, bool)
                alive[: self._n_rows] = self._alive[: self._n_rows]
                matrix[rows] = vectors
                alive[rows] = True
                self._matrix, self._alive = matrix, alive
            else:
                self._matrix[rows] = vectors
                self._alive[rows] = True
            self._n_rows = max(self._n_rows, needed)
            self._note(rows)

    def remove(self, rows: np.ndarray) -> None:
        with self._lock:
            rows = np.asarray(rows, np.int64)
            rows = rows[(rows >= 0) & (rows < self._n_rows)]
            self._alive[rows] = False
            self._note(rows)

    def _note(self, rows: np.ndarray) -> None:
        """Log a write (the caller holds the lock)."""
        self.generation += 1
        self._changes.append((self.generation, np.array(rows, np.int64)))

    def changed_since(self, generation: int) -> np.ndarray | None:
        """Rows written after `generation` (unsorted, maybe repeated); None when the log no longer reaches back."""
        with self._lock:
            if generation >= self.generation:
                return np.empty(0, np.int64)
            if not self._changes or self._changes[0][0] > generation + 1:
                return None
            return np.concatenate([rows for at, rows in self._changes if at > generation])

    def row_scores(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Scores of one query against `rows`: (n,) float32, -inf for removed rows and rows never added."""
        matrix, alive, n = self._matrix, self._alive, self._n_rows
        rows = np.asarray(rows, np.int64)
        out = np.full(len(rows), -np.inf, np.float32)
        inside = (rows >= 0) & (rows < n)
        inside[inside] = alive[rows[inside]]
        if inside.any():
            out[inside] = matrix[rows[inside]] @ np.asarray(query, np.float32)
        return out

    def scores(self, query: np.ndarray) -> np.ndarray:
        matrix, alive, n = self._matrix, self._alive, self._n_rows
        out = inner_products(matrix[:n], query)  # (n,)
        out[~alive[:n]] = -np.inf
        return out

    def search(
        self, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, np.float32))  # (b, dim)
        matrix, alive, n = self._matrix, self._alive, self._n_rows
        b = len(queries)
        rows_out = np.full((b, k), -1, np.int64)
        scores_out = np.full((b, k), -np.inf, np.float32)
        if n == 0 or k < 1:
            return rows_out, scores_out
        scores = queries @ matrix[:n].T  # (b, n)
        scores[:, ~alive[:n]] = -np.inf
        for i in range(b):
            if exclude is not None and len(exclude[i]):
                drop = exclude[i][(exclude[i] >= 0) & (exclude[i] < n)]
                scores[i, drop] = -np.inf
            rows, top = top_k(scores[i], k)
            rows_out[i, : len(rows)] = rows
            scores_out[i, : len(rows)] = top
        return rows_out, scores_out

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._matrix[np.asarray(rows, np.int64)].copy()

    def matrix(self) -> np.ndarray:
        """Every row's vector as a view (do not write to it): (n_rows, dim); removed rows keep their values."""
        view = self._matrix[: self._n_rows]
        return view

    def __len__(self) -> int:
        return int(self._alive[: self._n_rows].sum())


def inner_products(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """`matrix @ query` for one query: (n,) float32.

    FAISS's SIMD kernel reads the (n, dim) matrix once, like NumPy's sgemv, but ran 2-3x faster on
    the serving machine (0.9 vs 2.2 ms for 17k x 449; docs/benchmarks/serving.md). Still exact
    float32 dot products; only the summation order (the last bit) differs from NumPy.
    """
    matrix = np.ascontiguousarray(matrix, np.float32)  # a no-op for the indexes' row slices
    query = np.ascontiguousarray(np.asarray(query, np.float32).reshape(-1))
    n, dim = matrix.shape
    if len(query) != dim:
        raise ValueError(f"query must have {dim} values, got {len(query)}")
    out = np.empty(n, np.float32)
    if n:
        faiss.fvec_inner_products_ny(faiss.swig_ptr(out), faiss.swig_ptr(query), faiss.swig_ptr(matrix), dim, n)
    return out


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the k highest finite scores, best first (equal scores by lower row): (m,), (m,)."""
    n = len(scores)
    if n == 0 or k < 1:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    k = min(k, n)
    candidates = _above_a_sampled_threshold(scores, k)
    if candidates is None:
        # One partial sort on the raw scores (no negated copy); -inf rows sink and are dropped after.
        candidates = np.argpartition(scores, n - k)[n - k :] if k < n else np.arange(n)
        kth = scores[candidates].min()
        if k < n and np.isfinite(kth):
            candidates = np.flatnonzero(scores >= kth)  # every row tied with the k-th: lower rows win
    values = scores[candidates]
    finite = np.isfinite(values)
    candidates, values = candidates[finite], values[finite]
    order = np.lexsort((candidates, -values))[:k]
    return candidates[order].astype(np.int64), values[order].astype(np.float32)


SAMPLED_SELECTION_ROWS = 8192  # from this many rows on, top_k first narrows them with a sampled threshold


def _above_a_sampled_threshold(scores: np.ndarray, k: int) -> np.ndarray | None:
    """Every row scoring at least a threshold that at least k rows reach, when that is few rows; else None.

    The threshold is a high quantile of an evenly strided sample (at least 2,048 rows and 32 per
    wanted row; every row when k is large), set so about twice k rows reach it. Every row with a
    score at or above it is kept, ties included, so the top k among them are exactly the top k of
    all rows. Partitioning the values, not their indices, is what saves the time.
    """
    n = len(scores)
    if n < SAMPLED_SELECTION_ROWS or 4 * k > n:
        return None
    step = max(1, n // max(2048, 32 * k))
    sample = scores[::step]
    rank = min(len(sample) - 1, 2 * k // step + 4)  # about 2k rows lie above the sample's rank-th best
    threshold = np.partition(sample, len(sample) - 1 - rank)[len(sample) - 1 - rank]
    if not np.isfinite(threshold):
        return None
    candidates = np.flatnonzero(scores >= threshold)
    return candidates if k <= len(candidates) <= 8 * k else None


def padded_scores(index: VectorIndex, query: np.ndarray, n_rows: int) -> np.ndarray:
    """`index.scores(query)` cut or padded with -inf to exactly n_rows: (n_rows,) float32."""
    scores = index.scores(query)
    if len(scores) >= n_rows:
        return scores[:n_rows]
    out = np.full(n_rows, -np.inf, np.float32)
    out[: len(scores)] = scores
    return out

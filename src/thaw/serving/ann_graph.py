"""One published FAISS HNSW graph over a set of catalogue rows: id maps, tombstones, filtered search.

A `Band` is immutable to readers except for its tombstone bitmap, which the single writer clears
in place (a reader sees a bit either before or after the change, both of which are safe). New
entries go into a clone (`extended`), never into a graph a reader may be searching.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

GRAPH_SPACES = ("cosine", "l2_reduction", "inner_product")


class Band:
    """An HNSW graph holding some rows' vectors in `space`, searched by maximum inner product."""

    def __init__(
        self,
        key: int,
        index: Any,
        fid_rows: np.ndarray,
        valid: np.ndarray,
        *,
        space: str,
        max_norm: float,
        norm_bound: float,
    ) -> None:
        self.key = key  # norm band number (0 when there is one graph)
        self.index = index
        self.space = space
        self.fid_rows = fid_rows  # (n_entries,) int64: faiss id -> catalogue row
        self.valid = valid  # (ceil(n_entries / 8),) uint8 bitmap, little bit order: 1 = current entry
        self.max_norm = max_norm  # longest vector ever entered: bounds any entry's inner product / |q|
        self.norm_bound = norm_bound  # l2_reduction: the B of sqrt(B^2 - |x|^2); no entry is longer
        self.n_valid = int(np.unpackbits(valid, bitorder="little")[: len(fid_rows)].sum())
        # Every entry of a row (current or tombstoned), for excluding rows: sorted by row.
        self._fids_by_row = np.argsort(fid_rows, kind="stable")
        self._sorted_rows = fid_rows[self._fids_by_row]
        self.selector = faiss.IDSelectorBitmap(len(fid_rows), faiss.swig_ptr(valid))  # reads `valid` live

    @classmethod
    def build(
        cls, key: int, rows: np.ndarray, vectors: np.ndarray, *, space: str, m: int, ef_construction: int, headroom: float
    ) -> Band:
        """A new graph over `vectors` (n, dim) of `rows` (n,)."""
        dim = vectors.shape[1]
        if space == "l2_reduction":
            index = faiss.IndexHNSWFlat(dim + 1, m, faiss.METRIC_L2)
        else:
            index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        bound = headroom * float(np.linalg.norm(vectors, axis=1).max(initial=0.0))
        index.add(to_space(vectors, space, bound))
        valid = np.packbits(np.ones(len(rows), np.uint8), bitorder="little")
        max_norm = float(np.linalg.norm(vectors, axis=1).max(initial=0.0))
        return cls(key, index, rows, valid, space=space, max_norm=max_norm, norm_bound=bound)

    def fits(self, vectors: np.ndarray) -> np.ndarray:
        """Which of `vectors` (n, dim) this graph can take (l2_reduction: not longer than its bound)."""
        if self.space != "l2_reduction":
            return np.ones(len(vectors), bool)
        return np.einsum("ij,ij->i", vectors, vectors) <= self.norm_bound**2

    def extended(self, rows: np.ndarray, vectors: np.ndarray, *, clone: bool = True) -> Band:
        """A copy of this graph with `vectors` of `rows` added; their faiss ids follow the existing ones."""
        index = faiss.clone_index(self.index) if clone else self.index  # readers keep the original
        index.add(self.to_space(vectors))
        start = len(self.fid_rows)
        bits = np.unpackbits(self.valid, bitorder="little")[:start]
        valid = np.packbits(np.concatenate([bits, np.ones(len(rows), np.uint8)]), bitorder="little")
        max_norm = max(self.max_norm, float(np.linalg.norm(vectors, axis=1).max(initial=0.0)))
        return Band(
            self.key,
            index,
            np.concatenate([self.fid_rows, rows]),
            valid,
            space=self.space,
            max_norm=max_norm,
            norm_bound=self.norm_bound,
        )

    def to_space(self, vectors: np.ndarray) -> np.ndarray:
        """Item vectors (n, dim) as this graph stores them."""
        return to_space(vectors, self.space, self.norm_bound)

    def clear(self, fids: np.ndarray) -> None:
        """Tombstone entries (writer only)."""
        fids = np.unique(fids)
        was = self.is_valid(fids)
        np.bitwise_and.at(self.valid, fids >> 3, ~(np.uint8(1) << (fids & 7).astype(np.uint8)))
        self.n_valid -= int(was.sum())

    def is_valid(self, fids: np.ndarray) -> np.ndarray:
        return ((self.valid[fids >> 3] >> (fids & 7).astype(np.uint8)) & 1).astype(bool)

    def entries_of(self, rows: np.ndarray) -> np.ndarray:
        """Faiss ids of every entry (current or tombstoned) of `rows`."""
        if rows is None or len(rows) == 0 or len(self.fid_rows) == 0:
            return np.empty(0, np.int64)
        lo = np.searchsorted(self._sorted_rows, rows, "left")
        hi = np.searchsorted(self._sorted_rows, rows, "right")
        hit = hi > lo
        if not hit.any():
            return np.empty(0, np.int64)
        spans = [self._fids_by_row[a:b] for a, b in zip(lo[hit], hi[hit])]
        return np.concatenate(spans).astype(np.int64)

    def candidates(self, query: np.ndarray, k: int, ef: int, excluded: np.ndarray | None, n_threads: int) -> np.ndarray:
        """Rows of up to max(k, ef) current, non-excluded entries near `query` (dim,), for exact rescoring.

        The beam widens when tombstones or exclusions starve it, then falls back to every entry,
        so at least min(k, available) rows come back.
        """
        excluded_fids = self.entries_of(excluded) if excluded is not None else np.empty(0, np.int64)
        available = self.n_valid - int(self.is_valid(excluded_fids).sum()) if len(excluded_fids) else self.n_valid
        if available <= 0:
            return np.empty(0, np.int64)
        point = self.to_query(query)
        want = min(max(k, ef), len(self.fid_rows))  # the beam holds ef entries anyway: take them all
        need = min(k, available)
        faiss.omp_set_num_threads(n_threads)  # OpenMP keeps this per calling thread
        for beam in (max(ef, want), 4 * max(ef, want), 16 * max(ef, want)):
            rows = self._search(point, want, beam, excluded_fids)
            if len(rows) >= need:
                return rows
        live = np.flatnonzero(np.unpackbits(self.valid, bitorder="little")[: len(self.fid_rows)])
        return self.fid_rows[live]

    def to_query(self, query: np.ndarray) -> np.ndarray:
        query = np.asarray(query, np.float32).reshape(1, -1)
        if self.space == "l2_reduction":
            query = np.hstack([query, np.zeros((1, 1), np.float32)])
        return np.ascontiguousarray(query, np.float32)  # cosine: |q| does not change the order

    def _search(self, point: np.ndarray, want: int, ef: int, excluded_fids: np.ndarray) -> np.ndarray:
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef
        params.sel = self.selector
        if len(excluded_fids):
            # The composed selectors keep raw pointers to their parts: these locals hold them alive.
            batch = faiss.IDSelectorBatch(excluded_fids)  # copies the ids
            negated = faiss.IDSelectorNot(batch)
            selector = faiss.IDSelectorAnd(self.selector, negated)
            params.sel = selector
        _, fids = self.index.search(point, want, params=params)  # (1, want) -1 padded
        fids = fids[0]
        return self.fid_rows[fids[fids >= 0]]

    def nbytes(self) -> int:
        """Size of the serialized graph (stored vectors + links)."""
        return int(faiss.serialize_index(self.index).nbytes)


def to_space(vectors: np.ndarray, space: str, norm_bound: float) -> np.ndarray:
    """Item vectors (n, dim) as a graph in `space` stores them: (n, dim), or (n, dim + 1) for l2_reduction."""
    vectors = np.asarray(vectors, np.float32)
    if space == "cosine":
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-30), np.float32)
    if space == "l2_reduction":
        # |[q, 0] - [x, sqrt(B^2 - |x|^2)]|^2 = |q|^2 + B^2 - 2 q.x: ascending L2 = descending q.x.
        extra = np.sqrt(np.maximum(norm_bound**2 - np.einsum("ij,ij->i", vectors, vectors), 0.0))
        return np.ascontiguousarray(np.hstack([vectors, extra[:, None]]), np.float32)
    return np.ascontiguousarray(vectors, np.float32)

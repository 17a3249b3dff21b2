"""Approximate maximum inner-product search with FAISS HNSW graphs, updated as items arrive.

Item vectors' norms vary a lot (a popular item's vector is long), and a single HNSW graph answers
inner-product queries badly then: on the raw inner product, short vectors become unreachable; with
the L2 reduction, every query is far from every point. So by default (`metric="norm_ranged"`) rows
are split into bands of similar norm (ratio `band_ratio`), each band's graph holds unit directions
(cosine, where HNSW is at its best), and a search visits bands from the longest down, rescoring
candidates by the exact inner product, and stops once |q| * (a band's longest vector) cannot beat
the k-th score found (Cauchy-Schwarz: pruning loses nothing). Bands too small for a graph, and
rows not yet merged, sit in an exact "delta" that every search scans, so an item is recommendable
as soon as `add` returns.

Readers never lock: the writer never adds to a graph a reader can see; it adds to a clone and
publishes it (copy-on-write), and a search works on the snapshot it picked up when it started.
Overwritten and removed entries are tombstoned in a bitmap the graph search filters on, and a
band is rebuilt from its live rows once tombstones pass `compact_fraction` of it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import faiss
import numpy as np

from thaw.serving.ann_graph import Band
from thaw.serving.index import inner_products

log = logging.getLogger(__name__)

METRICS = ("norm_ranged", "l2_reduction", "inner_product")
NO_BAND = np.iinfo(np.int64).min


class _Snapshot:
    """What a search reads, published by one attribute assignment."""

    def __init__(self, bands: dict[int, Band], delta_rows: np.ndarray, delta_vectors: np.ndarray) -> None:
        self.bands = bands
        self.order = sorted(bands.values(), key=lambda band: -band.max_norm)  # longest vectors first
        self.delta_rows = delta_rows  # (n_delta,) int64 rows searched exactly
        self.delta_vectors = delta_vectors  # (n_delta, dim) float32


class FaissHnswIndex:
    """HNSW maximum inner-product search over catalogue rows (a `VectorIndex`), FAISS underneath.

    Parameters
    ----------
    metric
        "norm_ranged" (default): cosine graphs per norm band, see the module docstring.
        "l2_reduction": one graph on [x, sqrt(B^2 - |x|^2)], queried with [q, 0], whose L2
        neighbours are exactly the inner-product best. "inner_product": one graph on q.x.
    m, ef_construction
        Graph degree and build beam; they apply to graphs built after they are set.
    ef_search
        Search beam per band (at least k is used); may be changed at any time.
    band_ratio, min_band_rows
        Longest / shortest vector within a band; a band gets a graph from min_band_rows rows on.
    merge_rows, merge_fraction
        The delta is merged into the graphs once it holds max(merge_rows, merge_fraction * graphed rows).
    compact_fraction
        Rebuild a band once this share of its entries is tombstoned.
    norm_headroom
        l2_reduction: B = headroom * the longest vector at build; longer later vectors stay exact
        until a rebuild.
    n_threads
        FAISS OpenMP threads for building (1 gives the same graph for the same insertion order).
    """

    def __init__(
        self,
        dim: int,
        *,
        metric: str = "norm_ranged",
        m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        band_ratio: float = 1.25,
        min_band_rows: int = 1024,
        merge_rows: int = 4096,
        merge_fraction: float = 0.01,
        compact_fraction: float = 0.25,
        norm_headroom: float = 1.0,
        n_threads: int = 1,
        capacity: int = 1024,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if m < 2 or ef_construction < 1 or ef_search < 1:
            raise ValueError(f"m must be >= 2, ef_construction and ef_search >= 1, got {m}, {ef_construction}, {ef_search}")
        if band_ratio <= 1.0 or min_band_rows < 1:
            raise ValueError(f"band_ratio must be > 1 and min_band_rows >= 1, got {band_ratio}, {min_band_rows}")
        if merge_rows < 1 or not 0.0 <= merge_fraction < 1.0:
            raise ValueError(f"merge_rows must be >= 1, merge_fraction in [0, 1), got {merge_rows}, {merge_fraction}")
        if not 0.0 < compact_fraction <= 1.0:
            raise ValueError(f"compact_fraction must be in (0, 1], got {compact_fraction}")
        if norm_headroom < 1.0 or n_threads < 1:
            raise ValueError(f"norm_headroom must be >= 1 and n_threads >= 1, got {norm_headroom}, {n_threads}")
        self.dim = dim
        self.metric = metric
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.band_ratio = band_ratio
        self.min_band_rows = min_band_rows
        self.merge_rows = merge_rows
        self.merge_fraction = merge_fraction
        self.compact_fraction = compact_fraction
        self.norm_headroom = norm_headroom
        self.n_threads = n_threads
        capacity = max(capacity, 1)
        self._matrix = np.zeros((capacity, dim), np.float32)  # (capacity, dim): row -> vector
        self._alive = np.zeros(capacity, bool)
        self._row_band = np.full(capacity, NO_BAND, np.int64)  # writer only: row -> band key of its entry
        self._row_fid = np.full(capacity, -1, np.int64)  # writer only: row -> faiss id in that band
        self._n_rows = 0  # one past the highest row ever added
        self._stuck = 0  # delta rows the last merge had to leave there
        self._snap = _Snapshot({}, np.empty(0, np.int64), np.empty((0, dim), np.float32))
        self._lock = threading.Lock()

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, alive: np.ndarray, **options: Any) -> FaissHnswIndex:
        """An index holding `matrix` (n, dim) as rows 0..n-1, searchable over the `alive` (n,) rows."""
        matrix = np.asarray(matrix, np.float32)
        alive = np.asarray(alive, bool)
        if matrix.ndim != 2 or alive.shape != (len(matrix),):
            raise ValueError(f"matrix must be (n, dim) and alive (n,), got {matrix.shape}, {alive.shape}")
        index = cls(matrix.shape[1], capacity=len(matrix), **options)
        with index._lock:
            index._matrix[: len(matrix)] = matrix
            index._alive[: len(matrix)] = alive
            index._n_rows = len(matrix)
            index._rebuild_all()
        return index

    # ------------------------------------------------------------------ writes
    def add(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        rows = np.asarray(rows, np.int64)
        vectors = np.asarray(vectors, np.float32)
        if vectors.shape != (len(rows), self.dim):
            raise ValueError(f"vectors must be ({len(rows)}, {self.dim}), got {vectors.shape}")
        if len(rows) == 0:
            return
        if rows.min() < 0:
            raise ValueError("rows must be >= 0")
        # A row given twice keeps its last vector; the order becomes ascending rows.
        rows, last = np.unique(rows[::-1], return_index=True)
        vectors = vectors[::-1][last]
        with self._lock:
            self._store(rows, vectors)
            snap = self._snap
            keep = ~np.isin(snap.delta_rows, rows)
            # Publish the new vectors before tombstoning the old entries: a concurrent search
            # may briefly see a row twice (deduplicated), never zero times.
            self._publish(
                snap.bands,
                np.concatenate([snap.delta_rows[keep], rows]),
                np.concatenate([snap.delta_vectors[keep], vectors]),
            )
            self._stuck = min(self._stuck, int(keep.sum()))
            self._maintain(self._tombstone(rows))

    def remove(self, rows: np.ndarray) -> None:
        with self._lock:
            rows = np.asarray(rows, np.int64)
            rows = rows[(rows >= 0) & (rows < self._n_rows)]
            self._alive[rows] = False
            snap = self._snap
            keep = ~np.isin(snap.delta_rows, rows)
            if not keep.all():
                self._publish(snap.bands, snap.delta_rows[keep], snap.delta_vectors[keep])
                self._stuck = min(self._stuck, int(keep.sum()))
            self._maintain(self._tombstone(rows))

    def merge(self) -> None:
        """Move the whole delta into graphs now (a band of any size gets one)."""
        with self._lock:
            self._merge(force=True)

    def compact(self) -> None:
        """Rebuild every graph from the live rows now, dropping every tombstone."""
        with self._lock:
            self._rebuild_all()

    def _store(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        needed = int(rows.max()) + 1
        if needed > len(self._matrix):
            # Grow into fresh arrays: a concurrent search keeps the old ones, which stay valid.
            capacity = max(needed, 2 * len(self._matrix))
            grown = []
            for old, fill in ((self._matrix, 0.0), (self._alive, False), (self._row_band, NO_BAND), (self._row_fid, -1)):
                new = np.full((capacity, *old.shape[1:]), fill, old.dtype)
                new[: self._n_rows] = old[: self._n_rows]
                grown.append(new)
            grown[0][rows] = vectors
            grown[1][rows] = True
            self._matrix, self._alive, self._row_band, self._row_fid = grown
        else:
            self._matrix[rows] = vectors
            self._alive[rows] = True
        self._n_rows = max(self._n_rows, needed)

    def _publish(self, bands: dict[int, Band], delta_rows: np.ndarray, delta_vectors: np.ndarray) -> None:
        self._snap = _Snapshot(bands, delta_rows, delta_vectors)

    def _tombstone(self, rows: np.ndarray) -> set[int]:
        """Clear the graph entries of `rows`; the keys of the bands touched."""
        keys = self._row_band[rows]
        in_graph = keys != NO_BAND
        touched = {int(key) for key in np.unique(keys[in_graph])}
        for key in touched:
            self._snap.bands[key].clear(self._row_fid[rows[keys == key]])
        self._row_band[rows] = NO_BAND
        self._row_fid[rows] = -1
        return touched

    def _maintain(self, touched: set[int]) -> None:
        for key in sorted(touched):
            band = self._snap.bands.get(key)
            if band is not None and len(band.fid_rows) - band.n_valid > self.compact_fraction * len(band.fid_rows):
                self._rebuild_band(key)
        graphed = sum(band.n_valid for band in self._snap.order)
        if len(self._snap.delta_rows) - self._stuck >= max(self.merge_rows, self.merge_fraction * graphed):
            self._merge(force=False)

    def _band_keys(self, vectors: np.ndarray) -> np.ndarray:
        if self.metric != "norm_ranged":
            return np.zeros(len(vectors), np.int64)
        norms = np.maximum(np.linalg.norm(vectors, axis=1), 1e-30)
        return np.floor(np.log(norms) / np.log(self.band_ratio)).astype(np.int64)

    def _space(self) -> str:
        return "cosine" if self.metric == "norm_ranged" else self.metric

    def _merge(self, *, force: bool) -> None:
        snap = self._snap
        rows, vectors = snap.delta_rows, snap.delta_vectors
        if len(rows) == 0:
            return
        keys = self._band_keys(vectors)
        bands = dict(snap.bands)
        stay = np.zeros(len(rows), bool)
        faiss.omp_set_num_threads(self.n_threads)  # OpenMP keeps this per calling thread
        for key in np.unique(keys):
            chosen = np.flatnonzero(keys == key)
            band = bands.get(int(key))
            if band is None:
                if len(chosen) < self.min_band_rows and not force:
                    stay[chosen] = True  # too few for a graph: scanned exactly meanwhile
                    continue
                start = 0
                band = Band.build(
                    int(key), rows[chosen], vectors[chosen], space=self._space(), m=self.m,
                    ef_construction=self.ef_construction, headroom=self.norm_headroom,
                )  # fmt: skip
            else:
                fits = band.fits(vectors[chosen])
                stay[chosen[~fits]] = True  # l2_reduction: longer than the graph's bound
                chosen = chosen[fits]
                if len(chosen) == 0:
                    continue
                start = len(band.fid_rows)
                band = band.extended(rows[chosen], vectors[chosen])  # a clone: readers keep the original
            self._row_band[rows[chosen]] = key
            self._row_fid[rows[chosen]] = np.arange(start, start + len(chosen))
            bands[int(key)] = band
        self._publish(bands, rows[stay], vectors[stay])
        self._stuck = int(stay.sum())
        log.debug("merged %d delta rows into HNSW graphs, %d stay exact", int((~stay).sum()), self._stuck)
        if self.metric == "l2_reduction" and self._stuck >= self.merge_rows and bands:
            self._rebuild_all()  # the norm bound is stale: re-derive it from every live row

    def _rebuild_band(self, key: int) -> None:
        rows = np.flatnonzero(self._row_band[: self._n_rows] == key).astype(np.int64)
        bands = dict(self._snap.bands)
        del bands[key]
        snap = self._snap
        if len(rows) < self.min_band_rows:  # too small now: back to the exact delta
            self._row_band[rows] = NO_BAND
            self._row_fid[rows] = -1
            self._publish(bands, np.concatenate([snap.delta_rows, rows]), np.concatenate([snap.delta_vectors, self._matrix[rows]]))
            self._stuck += len(rows)
            return
        faiss.omp_set_num_threads(self.n_threads)
        bands[key] = Band.build(
            key, rows, self._matrix[rows], space=self._space(), m=self.m,
            ef_construction=self.ef_construction, headroom=self.norm_headroom,
        )  # fmt: skip
        self._row_fid[rows] = np.arange(len(rows))
        self._publish(bands, snap.delta_rows, snap.delta_vectors)
        log.debug("rebuilt HNSW band %d over %d live rows", key, len(rows))

    def _rebuild_all(self) -> None:
        rows = np.flatnonzero(self._alive[: self._n_rows]).astype(np.int64)
        self._row_band[:] = NO_BAND
        self._row_fid[:] = -1
        self._publish({}, rows, self._matrix[rows].copy())
        self._stuck = 0
        self._merge(force=False)

    # ------------------------------------------------------------------ reads (no lock)
    def search(
        self, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, np.float32))  # (b, dim)
        snap = self._snap  # the snapshot first: the row arrays read next are at least as new
        matrix, alive, n = self._matrix, self._alive, self._n_rows
        b = len(queries)
        rows_out = np.full((b, k), -1, np.int64)
        scores_out = np.full((b, k), -np.inf, np.float32)
        if n == 0 or k < 1:
            return rows_out, scores_out
        delta_scores = queries @ snap.delta_vectors.T  # (b, n_delta)
        delta_scores[:, ~alive[snap.delta_rows]] = -np.inf
        for i in range(b):
            excluded = _clip(exclude[i], n) if exclude is not None else None
            rows, scores = _delta_top(snap.delta_rows, delta_scores[i], k, excluded)
            rows, scores = _best(rows, scores, k, alive, excluded)
            query = queries[i]
            query_norm = float(np.linalg.norm(query))
            for band in snap.order:
                # Cauchy-Schwarz: nothing in this band or a later (shorter) one can beat the k-th.
                if len(rows) >= k and scores[k - 1] > query_norm * band.max_norm * (1 + 1e-5) + 1e-12:
                    break
                found = band.candidates(query, k, self.ef_search, excluded, self.n_threads)
                rows = np.concatenate([rows, found])
                scores = np.concatenate([scores, matrix[found] @ query])
                rows, scores = _best(rows, scores, k, alive, excluded)
            rows_out[i, : len(rows)] = rows
            scores_out[i, : len(rows)] = scores
        return rows_out, scores_out

    def scores(self, query: np.ndarray) -> np.ndarray:
        matrix, alive, n = self._matrix, self._alive, self._n_rows
        out = inner_products(matrix[:n], query)  # (n,)
        out[~alive[:n]] = -np.inf
        return out

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._matrix[np.asarray(rows, np.int64)].copy()

    def matrix(self) -> np.ndarray:
        """Every row's vector as a view (do not write to it): (n_rows, dim); removed rows keep their values."""
        return self._matrix[: self._n_rows]

    def __len__(self) -> int:
        return int(self._alive[: self._n_rows].sum())

    def stats(self) -> dict[str, int]:
        """Graphs (bands), their entries, tombstones among those, and rows scanned exactly."""
        snap = self._snap
        entries = sum(len(band.fid_rows) for band in snap.order)
        valid = sum(band.n_valid for band in snap.order)
        return {"bands": len(snap.order), "graph_entries": entries, "tombstones": entries - valid, "delta_rows": len(snap.delta_rows)}

    def index_bytes(self) -> int:
        """Serialized size of every FAISS graph (their stored vectors + links)."""
        return sum(band.nbytes() for band in self._snap.order)


def _clip(rows: np.ndarray, n: int) -> np.ndarray | None:
    rows = np.asarray(rows, np.int64)
    rows = rows[(rows >= 0) & (rows < n)]
    return rows if len(rows) else None


def _delta_top(
    rows: np.ndarray, scores: np.ndarray, k: int, excluded: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The delta's k best rows (and every row tied with the k-th, so ties resolve like ExactIndex)."""
    if excluded is not None:
        scores = np.where(np.isin(rows, excluded), -np.inf, scores)
    if len(scores) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        rows, scores = rows[keep], scores[keep]
    return rows, scores


def _best(
    rows: np.ndarray, scores: np.ndarray, k: int, alive: np.ndarray, excluded: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Top k of live, non-excluded candidates, best first, ties by lower row: (m,), (m,) with m <= k."""
    rows, first = np.unique(rows, return_index=True)  # a row in the delta wins over its stale entry
    scores = scores[first].astype(np.float32)
    scores[~alive[rows]] = -np.inf
    if excluded is not None:
        scores[np.isin(rows, excluded)] = -np.inf
    order = np.lexsort((rows, -scores))[:k]
    order = order[np.isfinite(scores[order])]
    return rows[order], scores[order]

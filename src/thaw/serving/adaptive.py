"""Pick the vector index by catalogue size: exact below `ann_threshold` rows, FAISS HNSW above it."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from thaw.serving.ann import FaissHnswIndex
from thaw.serving.index import ExactIndex, VectorIndex

log = logging.getLogger(__name__)

DEFAULT_ANN_THRESHOLD = 50_000  # ServeConfig.ann_threshold: see there


def make_index(
    dim: int,
    expected_rows: int,
    *,
    ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    grow: bool = True,
    background: bool = True,
    **hnsw_options: Any,
) -> VectorIndex:
    """An index for about `expected_rows` rows: FaissHnswIndex from `ann_threshold` rows up, else
    an AdaptiveIndex that switches once it grows past it (`grow`), else a plain ExactIndex."""
    if ann_threshold < 1 or expected_rows < 0:
        raise ValueError(f"ann_threshold must be >= 1 and expected_rows >= 0, got {ann_threshold}, {expected_rows}")
    if expected_rows >= ann_threshold:
        return FaissHnswIndex(dim, capacity=expected_rows, **hnsw_options)
    if grow:
        return AdaptiveIndex(
            dim, ann_threshold=ann_threshold, capacity=expected_rows, background=background, **hnsw_options
        )
    return ExactIndex(dim, capacity=max(expected_rows, 1))


def index_from_matrix(
    matrix: np.ndarray,
    alive: np.ndarray,
    *,
    ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    background: bool = True,
    **hnsw_options: Any,
) -> VectorIndex:
    """An index holding `matrix` (n, dim) as rows 0..n-1, live where `alive` (n,): a FaissHnswIndex
    built in one go from `ann_threshold` live rows up, else an AdaptiveIndex that switches later."""
    matrix = np.asarray(matrix, np.float32)
    alive = np.asarray(alive, bool)
    if int(alive.sum()) >= ann_threshold:
        return FaissHnswIndex.from_matrix(matrix, alive, **hnsw_options)
    index = AdaptiveIndex(
        matrix.shape[1], ann_threshold=ann_threshold, capacity=max(len(matrix), 1), background=background, **hnsw_options
    )
    rows = np.flatnonzero(alive)
    index.add(rows, matrix[rows])
    return index


def is_exact(index: VectorIndex) -> bool:
    """Whether `index` answers by a full exact scan now (so one scan can serve a whole request)."""
    if isinstance(index, AdaptiveIndex):
        return not index.is_approximate
    return isinstance(index, ExactIndex)


class AdaptiveIndex:
    """ExactIndex until `ann_threshold` rows are live, then a FaissHnswIndex built from it, once.

    With `background`, the graph is built on a thread from a copy of the rows while the exact
    index keeps serving and taking writes; those writes are replayed into the new index before it
    is swapped in, so no write is lost and no reader waits.
    """

    def __init__(
        self,
        dim: int,
        *,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        capacity: int = 1024,
        background: bool = True,
        **hnsw_options: Any,
    ) -> None:
        if ann_threshold < 1:
            raise ValueError(f"ann_threshold must be >= 1, got {ann_threshold}")
        FaissHnswIndex(dim, capacity=1, **hnsw_options)  # validate the options now, not at migration
        self.dim = dim
        self.ann_threshold = ann_threshold
        self.background = background
        self._options = hnsw_options
        self._inner: ExactIndex | FaissHnswIndex = ExactIndex(dim, capacity=capacity)
        self._lock = threading.Lock()
        self._pending: list[tuple[str, np.ndarray, np.ndarray | None]] | None = None  # writes during a build
        self._thread: threading.Thread | None = None
        self._failed = False  # a failed build is not retried on every write

    @property
    def is_approximate(self) -> bool:
        """Whether searches go through the HNSW graph yet."""
        return isinstance(self._inner, FaissHnswIndex)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a background migration finishes; True when none is running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def add(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            self._inner.add(rows, vectors)
            if self._pending is not None:
                self._pending.append(("add", np.array(rows, np.int64), np.array(vectors, np.float32)))
            elif not self.is_approximate and not self._failed and len(self._inner) >= self.ann_threshold:
                self._start_migration()

    def remove(self, rows: np.ndarray) -> None:
        with self._lock:
            self._inner.remove(rows)
            if self._pending is not None:
                self._pending.append(("remove", np.array(rows, np.int64), None))

    def _start_migration(self) -> None:
        exact = self._inner
        matrix = np.array(exact.matrix())  # (n_rows, dim) copy: the build must not see later writes
        # ExactIndex scores removed rows -inf; a zero query scores every live row 0.
        alive = np.isfinite(exact.scores(np.zeros(self.dim, np.float32)))
        log.info("catalogue reached %d rows: building the HNSW index", int(alive.sum()))
        if not self.background:
            self._inner = FaissHnswIndex.from_matrix(matrix, alive, **self._options)
            return
        self._pending = []
        self._thread = threading.Thread(target=self._migrate, args=(matrix, alive), name="thaw-ann-build", daemon=True)
        self._thread.start()

    def _migrate(self, matrix: np.ndarray, alive: np.ndarray) -> None:
        try:
            ann = FaissHnswIndex.from_matrix(matrix, alive, **self._options)
        except Exception:
            log.exception("HNSW build failed: staying on the exact index")
            with self._lock:
                self._pending = None
                self._failed = True
            return
        with self._lock:
            for op, rows, vectors in self._pending or []:
                if op == "add":
                    ann.add(rows, vectors)
                else:
                    ann.remove(rows)
            self._inner = ann
            self._pending = None
        log.info("switched to the HNSW index (%d rows)", len(ann))

    def search(
        self, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._inner.search(queries, k, exclude)

    @property
    def generation(self) -> int:
        """The exact index's write count (kept_ranks.py); -1 once on HNSW, whose lists are not kept."""
        inner = self._inner
        return inner.generation if isinstance(inner, ExactIndex) else -1

    def changed_since(self, generation: int) -> np.ndarray | None:
        inner = self._inner
        return inner.changed_since(generation) if isinstance(inner, ExactIndex) else None

    def row_scores(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        inner = self._inner
        if isinstance(inner, ExactIndex):
            return inner.row_scores(rows, query)
        return np.asarray(inner.vectors(rows) @ np.asarray(query, np.float32), np.float32)

    def scores(self, query: np.ndarray) -> np.ndarray:
        return self._inner.scores(query)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._inner.vectors(rows)

    def matrix(self) -> np.ndarray:
        return self._inner.matrix()

    def __len__(self) -> int:
        return len(self._inner)

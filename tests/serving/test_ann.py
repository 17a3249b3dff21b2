"""FaissHnswIndex and AdaptiveIndex: the VectorIndex contract beside ExactIndex, plus ANN-only behaviour."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
import pytest

from thaw.serving import ann as ann_module
from thaw.serving.adaptive import AdaptiveIndex, make_index
from thaw.serving.ann import METRICS, FaissHnswIndex
from thaw.serving.index import ExactIndex, VectorIndex

DIM = 8

# Small merge thresholds so that a few dozen rows already live in the graph, not only the delta.
FACTORIES: dict[str, Callable[[], Any]] = {
    "exact": lambda: ExactIndex(DIM, capacity=4),
    **{
        f"hnsw-{metric}": (
            # The single-graph metrics need a beam as wide as these tiny catalogues to be exact.
            lambda metric=metric: FaissHnswIndex(
                DIM, metric=metric, m=8, ef_construction=64, ef_search=32 if metric == "norm_ranged" else 512,
                merge_rows=16, merge_fraction=0.0, min_band_rows=8,
            )
        )  # fmt: skip
        for metric in METRICS
    },
    "adaptive": lambda: AdaptiveIndex(DIM, ann_threshold=40, background=False, m=8, merge_rows=16, min_band_rows=8),
}


@pytest.fixture(params=list(FACTORIES))
def index(request: pytest.FixtureRequest) -> Any:
    return FACTORIES[request.param]()


def vectors(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal((n, DIM))).astype(np.float32)


def assert_same(a: VectorIndex, b: VectorIndex, queries: np.ndarray, k: int, exclude: Any = None) -> None:
    rows_a, scores_a = a.search(queries, k, exclude)
    rows_b, scores_b = b.search(queries, k, exclude)
    np.testing.assert_array_equal(rows_a, rows_b)
    np.testing.assert_allclose(scores_a, scores_b, rtol=1e-5, atol=1e-5)
    assert len(a) == len(b)


# ---------------------------------------------------------------- the shared contract
def test_is_a_vector_index(index: Any) -> None:
    assert isinstance(index, VectorIndex)
    assert index.dim == DIM


def test_empty_index_pads(index: Any) -> None:
    rows, scores = index.search(vectors(2, 0), 3)
    assert rows.shape == (2, 3) and rows.dtype == np.int64 and scores.dtype == np.float32
    assert (rows == -1).all() and np.isneginf(scores).all()
    assert len(index) == 0


def test_search_matches_exact_top_k(index: Any) -> None:
    reference = ExactIndex(DIM)
    data = vectors(300, 1)
    for start in range(0, 300, 50):  # arriving in batches
        rows = np.arange(start, start + 50)
        index.add(rows, data[rows])
        reference.add(rows, data[rows])
    queries = vectors(20, 2)
    assert_same(index, reference, queries, 10)
    rows, scores = index.search(queries, 10)
    assert (np.diff(scores, axis=1) <= 0).all()  # best first


def test_overwrite_replaces_the_vector(index: Any) -> None:
    data = vectors(100, 3)
    index.add(np.arange(100), data)
    target = vectors(1, 4)[0]
    index.add(np.array([7]), (10 * target)[None])  # row 7 now points straight at the query
    rows, scores = index.search(target, 1)
    assert rows[0, 0] == 7
    np.testing.assert_allclose(scores[0, 0], 10 * target @ target, rtol=1e-5)
    np.testing.assert_allclose(index.vectors(np.array([7]))[0], 10 * target)
    assert len(index) == 100
    index.add(np.array([7]), -10 * target[None])  # and now away from it
    assert 7 not in index.search(target, 20)[0][0]


def test_duplicate_rows_in_one_add_keep_the_last(index: Any) -> None:
    index.add(np.array([0, 1, 0]), vectors(3, 5))
    np.testing.assert_allclose(index.vectors(np.array([0]))[0], vectors(3, 5)[2])
    assert len(index) == 2


def test_remove_and_re_add(index: Any) -> None:
    reference = ExactIndex(DIM)
    data = vectors(200, 6)
    for target in (index, reference):
        target.add(np.arange(200), data)
        target.remove(np.arange(0, 200, 3))
        target.remove(np.array([-5, 10_000]))  # out of range: ignored
    queries = vectors(10, 7)
    assert_same(index, reference, queries, 15)
    assert not np.isin(index.search(queries, 50)[0], np.arange(0, 200, 3)).any()
    assert np.isneginf(index.scores(queries[0])[::3]).all()
    for target in (index, reference):
        target.add(np.array([3]), data[3:4])
    assert_same(index, reference, queries, 15)
    assert len(index) == 200 - len(range(0, 200, 3)) + 1


def test_exclude_per_query(index: Any) -> None:
    reference = ExactIndex(DIM)
    data = vectors(150, 8)
    index.add(np.arange(150), data)
    reference.add(np.arange(150), data)
    queries = vectors(3, 9)
    top = reference.search(queries, 5)[0]
    exclude = [top[0], np.array([], np.int64), np.concatenate([top[2][:2], [-1, 999]])]
    assert_same(index, reference, queries, 5, exclude)
    rows = index.search(queries, 5, exclude)[0]
    assert not np.isin(rows[0], top[0]).any()
    np.testing.assert_array_equal(rows[1], top[1])


def test_more_k_than_rows_pads(index: Any) -> None:
    index.add(np.array([2, 5, 9]), vectors(3, 10))  # rows 0, 1, 3, 4, ... never added
    rows, scores = index.search(vectors(1, 11), 6)
    assert sorted(rows[0, :3]) == [2, 5, 9]
    assert (rows[0, 3:] == -1).all() and np.isneginf(scores[0, 3:]).all()
    assert index.matrix().shape == (10, DIM)
    assert np.isfinite(index.scores(vectors(1, 11)[0])).sum() == 3


def test_bad_input_is_rejected(index: Any) -> None:
    with pytest.raises(ValueError, match="vectors must be"):
        index.add(np.array([0, 1]), vectors(3, 0))
    with pytest.raises(ValueError, match="rows must be >= 0"):
        index.add(np.array([-1]), vectors(1, 0))
    index.add(np.array([], np.int64), np.zeros((0, DIM), np.float32))
    assert len(index) == 0


def test_random_operation_sequence_matches_exact(index: Any) -> None:
    rng = np.random.default_rng(12)
    reference = ExactIndex(DIM)
    for step in range(60):
        op = rng.integers(3)
        if op == 0:  # new rows and overwrites, in one batch
            rows = rng.choice(400, size=int(rng.integers(1, 30)), replace=False)
            data = rng.standard_normal((len(rows), DIM)).astype(np.float32)
            index.add(rows, data)
            reference.add(rows, data)
        elif op == 1:
            rows = rng.choice(400, size=int(rng.integers(1, 15)), replace=False)
            index.remove(rows)
            reference.remove(rows)
        queries = rng.standard_normal((4, DIM)).astype(np.float32)
        exclude = [rng.choice(400, size=int(rng.integers(0, 20)), replace=False) for _ in range(4)]
        assert_same(index, reference, queries, 12, exclude)


# ---------------------------------------------------------------- ANN only
def small_hnsw(**options: Any) -> FaissHnswIndex:
    base: dict[str, Any] = dict(
        metric="inner_product", m=8, ef_construction=64, ef_search=32, merge_rows=16, merge_fraction=0.0,
        min_band_rows=1,
    )
    return FaissHnswIndex(DIM, **{**base, **options})


def test_rows_live_in_the_graph_after_a_merge() -> None:
    index = small_hnsw()
    index.add(np.arange(100), vectors(100, 13))
    assert index.stats() == {"bands": 1, "graph_entries": 100, "tombstones": 0, "delta_rows": 0}
    index.add(np.arange(100, 105), vectors(5, 14))  # below merge_rows: waits in the exact delta
    assert index.stats()["delta_rows"] == 5
    index.merge()
    assert index.stats() == {"bands": 1, "graph_entries": 105, "tombstones": 0, "delta_rows": 0}
    assert index.index_bytes() > 0


def test_overwrite_tombstones_the_old_entry() -> None:
    index = small_hnsw()
    index.add(np.arange(100), vectors(100, 15))
    index.add(np.arange(10), vectors(10, 16))
    assert index.stats() == {"bands": 1, "graph_entries": 100, "tombstones": 10, "delta_rows": 10}


def test_k_results_come_back_when_most_entries_are_tombstoned() -> None:
    index = small_hnsw(metric="norm_ranged", compact_fraction=1.0, ef_search=10)  # never compacts: 95% dead
    reference = ExactIndex(DIM)
    data = vectors(2000, 17)
    index.add(np.arange(2000), data)
    reference.add(np.arange(2000), data)
    dead = np.random.default_rng(18).choice(2000, 1900, replace=False)
    index.remove(dead)
    reference.remove(dead)
    assert index.stats()["tombstones"] == 1900
    queries = vectors(5, 19)
    rows, _ = index.search(queries, 50, [np.setdiff1d(np.arange(2000), dead)[:30]] * 5)
    assert (rows >= 0).sum(axis=1).tolist() == [50] * 5  # 100 live - 30 excluded >= 50
    assert_same(index, reference, queries, 50)


def test_compaction_drops_tombstones_past_the_fraction() -> None:
    index = small_hnsw(compact_fraction=0.3)
    index.add(np.arange(100), vectors(100, 20))
    index.remove(np.arange(25))
    assert index.stats()["tombstones"] == 25
    index.remove(np.arange(25, 35))  # 35% tombstoned: rebuilt from the 65 live rows
    assert index.stats() == {"bands": 1, "graph_entries": 65, "tombstones": 0, "delta_rows": 0}
    index.compact()
    assert len(index) == 65


def test_longer_vectors_than_the_norm_bound_are_still_found() -> None:
    index = small_hnsw(metric="l2_reduction", ef_search=512)  # exact on 225 rows: this is about the bound
    reference = ExactIndex(DIM)
    data = vectors(200, 21)
    index.add(np.arange(200), data)
    reference.add(np.arange(200), data)
    long = vectors(5, 22, scale=50.0)
    index.add(np.arange(200, 205), long)
    reference.add(np.arange(200, 205), long)
    index.merge()  # they do not fit the graph's L2 reduction: they stay in the exact delta
    assert index.stats()["delta_rows"] == 5
    assert_same(index, reference, vectors(10, 23), 10)
    more = vectors(20, 24, scale=50.0)
    index.add(np.arange(205, 225), more)  # past merge_rows: rebuilt with a new bound
    reference.add(np.arange(205, 225), more)
    assert index.stats() == {"bands": 1, "graph_entries": 225, "tombstones": 0, "delta_rows": 0}
    assert_same(index, reference, vectors(10, 25), 10)


def test_merging_does_not_touch_the_graph_readers_hold() -> None:
    index = small_hnsw()
    index.add(np.arange(100), vectors(100, 26))
    held = index._snap.order[0]
    assert held is not None
    index.add(np.arange(100, 200), vectors(100, 27))
    assert held.index.ntotal == 100 and index._snap.order[0] is not held


def test_recall_on_clustered_data() -> None:
    rng = np.random.default_rng(28)
    centres = rng.standard_normal((20, 16))
    data = (centres[rng.integers(20, size=5000)] + 0.3 * rng.standard_normal((5000, 16))).astype(np.float32)
    data *= rng.lognormal(0.0, 0.3, (5000, 1)).astype(np.float32)  # item norms vary
    queries = rng.standard_normal((50, 16)).astype(np.float32)
    exact = ExactIndex(16)
    exact.add(np.arange(5000), data)
    truth = exact.search(queries, 10)[0]
    index = FaissHnswIndex(16, m=16, ef_construction=100, ef_search=64, min_band_rows=64)
    for start in range(0, 5000, 500):
        index.add(np.arange(start, start + 500), data[start : start + 500])
    index.merge()
    assert index.stats()["delta_rows"] == 0 and index.stats()["bands"] > 3
    found = index.search(queries, 10)[0]
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(found, truth)])
    assert recall >= 0.98


def test_same_insertion_order_builds_the_same_graph() -> None:
    def build() -> FaissHnswIndex:
        index = small_hnsw(merge_rows=64, metric="norm_ranged")
        rng = np.random.default_rng(29)
        for _ in range(20):
            rows = rng.choice(600, 50, replace=False)
            index.add(rows, rng.standard_normal((50, DIM)).astype(np.float32))
            index.remove(rng.choice(600, 5, replace=False))
        return index

    a, b = build(), build()
    assert a.stats() == b.stats() and a.stats()["bands"] > 1
    for band_a, band_b in zip(a._snap.order, b._snap.order):
        np.testing.assert_array_equal(faiss.serialize_index(band_a.index), faiss.serialize_index(band_b.index))
    queries = vectors(10, 30)
    assert_same(a, b, queries, 20)


def test_concurrent_add_and_search() -> None:
    index = small_hnsw(merge_rows=32, compact_fraction=0.2)
    index.add(np.arange(200), vectors(200, 31))
    errors: list[BaseException] = []
    done = threading.Event()

    def read(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not done.is_set():
                rows, scores = index.search(rng.standard_normal((3, DIM)).astype(np.float32), 10)
                assert ((rows >= -1) & (rows < 2000)).all()
                assert (rows[:, :5] >= 0).all()  # never fewer than 150 rows are live
                assert (np.diff(scores, axis=1) <= 0).all()
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    readers = [threading.Thread(target=read, args=(seed,)) for seed in (32, 33)]
    for thread in readers:
        thread.start()
    reference = ExactIndex(DIM)
    reference.add(np.arange(200), vectors(200, 31))
    rng = np.random.default_rng(34)
    for step in range(150):  # new rows, overwrites and removals, with merges and compactions
        rows = rng.choice(2000, 20, replace=False)
        data = rng.standard_normal((20, DIM)).astype(np.float32)
        index.add(rows, data)
        reference.add(rows, data)
        if step % 3 == 0:
            gone = rng.choice(2000, 10, replace=False)
            index.remove(gone)
            reference.remove(gone)
    done.set()
    for thread in readers:
        thread.join()
    assert not errors, errors[0]
    assert_same(index, reference, vectors(10, 35), 10)


def test_threads_setting_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(ann_module.faiss, "omp_set_num_threads", seen.append)
    index = small_hnsw(n_threads=2)
    index.add(np.arange(50), vectors(50, 36))
    index.search(vectors(2, 37), 5)
    assert seen and set(seen) == {2}


@pytest.mark.parametrize(
    "options",
    [dict(metric="cosine"), dict(m=1), dict(ef_search=0), dict(compact_fraction=0.0), dict(n_threads=0)],
)
def test_bad_options_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaissHnswIndex(DIM, **options)
    with pytest.raises(ValueError):
        AdaptiveIndex(DIM, **options)


# ---------------------------------------------------------------- choosing and switching
def test_make_index_chooses_by_size() -> None:
    assert isinstance(make_index(DIM, 500_000, ann_threshold=100_000), FaissHnswIndex)
    assert isinstance(make_index(DIM, 1_000, ann_threshold=100_000), AdaptiveIndex)
    assert isinstance(make_index(DIM, 1_000, ann_threshold=100_000, grow=False), ExactIndex)
    assert make_index(DIM, 500_000, ann_threshold=100, ef_search=99).ef_search == 99  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        make_index(DIM, 10, ann_threshold=0)


def test_adaptive_index_migrates_once_without_losing_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    original = FaissHnswIndex.from_matrix.__func__  # type: ignore[attr-defined]

    def slow_build(cls: type, matrix: np.ndarray, alive: np.ndarray, **options: Any) -> FaissHnswIndex:
        assert release.wait(10)  # hold the build until the test has written more
        return original(cls, matrix, alive, **options)

    monkeypatch.setattr(FaissHnswIndex, "from_matrix", classmethod(slow_build))
    index = AdaptiveIndex(DIM, ann_threshold=50, background=True, m=8, merge_rows=16)
    reference = ExactIndex(DIM)
    data = vectors(120, 38)
    for target in (index, reference):
        target.add(np.arange(40), data[:40])
        target.remove(np.array([3]))
        target.add(np.arange(40, 60), data[40:60])  # 59 live: the build starts
    assert not index.is_approximate
    for target in (index, reference):  # writes while the graph is being built
        target.add(np.arange(60, 120), data[60:])
        target.add(np.array([5]), data[119:120])
        target.remove(np.array([10, 70]))
    assert_same(index, reference, vectors(5, 39), 10)  # the exact index still serves
    release.set()
    assert index.wait(10)
    assert index.is_approximate
    assert_same(index, reference, vectors(5, 39), 10)
    np.testing.assert_allclose(index.vectors(np.array([5])), data[119:120])


def test_bands_of_short_vectors_are_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    from thaw.serving import ann_graph

    rng = np.random.default_rng(40)
    short = rng.standard_normal((600, DIM)).astype(np.float32)
    short /= np.linalg.norm(short, axis=1, keepdims=True)  # norm 1
    long = 100 * rng.standard_normal((300, DIM)).astype(np.float32) / np.sqrt(DIM)  # norm ~ 100
    data = np.concatenate([short, long])
    index = FaissHnswIndex(DIM, m=8, ef_search=32, min_band_rows=16, merge_rows=64, band_ratio=1.25)
    index.add(np.arange(900), data)
    reference = ExactIndex(DIM)
    reference.add(np.arange(900), data)
    assert index.stats()["bands"] >= 3
    visited: list[float] = []
    original = ann_graph.Band.candidates

    def counting(self: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        visited.append(self.max_norm)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ann_graph.Band, "candidates", counting)
    queries = vectors(5, 41)
    assert_same(index, reference, queries, 10)
    assert visited and min(visited) > 10  # the norm-1 bands were never searched


def test_a_failed_build_keeps_the_exact_index(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def broken(cls: type, matrix: np.ndarray, alive: np.ndarray, **options: Any) -> FaissHnswIndex:
        calls.append(len(matrix))
        raise MemoryError("no room for the graph")

    monkeypatch.setattr(FaissHnswIndex, "from_matrix", classmethod(broken))
    index = AdaptiveIndex(DIM, ann_threshold=10, background=True)
    index.add(np.arange(20), vectors(20, 42))
    assert index.wait(10)
    index.add(np.arange(20, 40), vectors(20, 43))
    assert index.wait(10)
    assert not index.is_approximate and len(index) == 40 and calls == [20]
    assert index.search(vectors(1, 44), 5)[0].shape == (1, 5)

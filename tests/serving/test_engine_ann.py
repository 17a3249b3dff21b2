"""The engine over an HNSW index: identical to exact scans below the threshold, close above it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thaw.data.records import EventRecord, ItemRecord, UserRecord, now_utc
from thaw.data.store import Store
from thaw.serving import chain
from thaw.serving.adaptive import AdaptiveIndex, is_exact
from thaw.serving.ann import FaissHnswIndex
from thaw.serving.chain import SourceSearch
from thaw.serving.config import ExplorationConfig
from thaw.serving.index import ExactIndex

N_ITEMS = 1500  # more than one HNSW band's minimum (1024): the graph is searched, not only the delta
WORDS = [f"w{n}" for n in range(60)]


@pytest.fixture
def seeded(tmp_path: Path) -> list[str]:
    """A store with N_ITEMS items of random titles and 40 users with a few events each."""
    rng = np.random.default_rng(0)
    with Store(f"sqlite:///{tmp_path / 'serve.sqlite'}") as store:
        store.upsert_items(
            [ItemRecord(f"i{n}", " ".join(rng.choice(WORDS, 4, replace=False))) for n in range(N_ITEMS)]
        )
        users = [f"u{n}" for n in range(40)]
        store.upsert_users([UserRecord(u) for u in users])
        store.add_events(
            EventRecord(u, f"i{item}", str(rng.choice(["click", "purchase", "view"])), now_utc())
            for u in users
            for item in rng.choice(N_ITEMS, 5, replace=False)
        )
    return users


def lists(client, users: list[str], k: int = 10) -> list[list[tuple[str, str, float]]]:
    out = []
    for user in users:
        items = client.get(f"/users/{user}/recommendations", params={"k": k}).json()["items"]
        out.append([(i["id"], i["source"], i["score"]) for i in items])
    for item in ("i1", "i2", "i3"):
        items = client.get(f"/items/{item}/similar", params={"k": k}).json()["items"]
        out.append([(i["id"], i["source"], i["score"]) for i in items])
    return out


def test_below_the_threshold_results_are_those_of_the_plain_exact_index(seeded, make_client, monkeypatch) -> None:
    exploring = ExplorationConfig(share=0.3, max_impressions=3, pool=50)
    adaptive = make_client(exploration=exploring, ann_threshold=N_ITEMS + 1, log_impressions=False)
    assert isinstance(adaptive.app.state.engine.content_index, AdaptiveIndex)
    expected = lists(adaptive, seeded)
    # The same requests against an engine whose index is the plain ExactIndex of before.
    monkeypatch.setattr(
        "thaw.serving.engine.index_from_matrix",
        lambda matrix, alive, **_: _exact(matrix, alive),
    )
    plain = make_client(exploration=exploring, log_impressions=False)
    assert isinstance(plain.app.state.engine.content_index, ExactIndex)
    plain.app.state.engine.catalogue.impressions.set(np.arange(N_ITEMS), 0.0)
    adaptive.app.state.engine.catalogue.impressions.set(np.arange(N_ITEMS), 0.0)
    adaptive.app.state.engine._requests = iter(range(10**6))
    plain.app.state.engine._requests = iter(range(10**6))
    assert lists(plain, seeded) == lists(adaptive, seeded)
    assert any(source == "exploration" for served in expected for _, source, _ in served)


def _exact(matrix: np.ndarray, alive: np.ndarray) -> ExactIndex:
    index = ExactIndex(matrix.shape[1], capacity=max(len(matrix), 1))
    rows = np.flatnonzero(alive)
    index.add(rows, matrix[rows])
    return index


def test_above_the_threshold_the_hnsw_index_serves_nearly_the_same_lists(seeded, make_client) -> None:
    exact = make_client()
    ann = make_client(ann_threshold=1000, hnsw_ef_search=64)
    assert is_exact(exact.app.state.engine.content_index)
    index = ann.app.state.engine.content_index
    assert isinstance(index, FaissHnswIndex) and index.stats()["graph_entries"] > 0
    overlaps = []
    for want, got in zip(lists(exact, seeded), lists(ann, seeded), strict=True):
        assert len(got) == len(want) and {s for _, s, _ in got} == {s for _, s, _ in want}
        exact_scores = {i: score for i, _, score in want}
        overlaps.append(len(exact_scores.keys() & {i for i, _, _ in got}) / len(want))
        for item, _, score in got:  # candidates are rescored exactly
            if item in exact_scores:
                assert score == pytest.approx(exact_scores[item], abs=1e-5)
    assert np.mean(overlaps) >= 0.9, overlaps
    # A new item is searchable as soon as POST returns (the exact delta), and deletes stick.
    ann.post("/items", json={"id": "fresh", "title": "w1 w2 w3 w4"})
    twin = ann.post("/items", json={"id": "twin", "title": "w1 w2 w3 w4"})
    assert twin.status_code == 200
    assert [i["id"] for i in ann.get("/items/fresh/similar", params={"k": 1}).json()["items"]] == ["twin"]
    ann.delete("/items/twin")
    assert "twin" not in [i["id"] for i in ann.get("/items/fresh/similar", params={"k": 5}).json()["items"]]


def test_a_model_above_the_threshold_gets_an_hnsw_index_built_off_the_lock(seeded, make_client) -> None:
    from tests.serving.test_engine import ScaledContent

    exact = make_client({"model": ScaledContent()})
    ann = make_client({"model": ScaledContent()}, ann_threshold=1000)
    state = ann.app.state.engine.model_state
    assert isinstance(state.index, FaissHnswIndex) and len(state.index) == N_ITEMS
    overlaps = []
    for want, got in zip(lists(exact, seeded), lists(ann, seeded), strict=True):
        assert {s for _, s, _ in got} == {s for _, s, _ in want} == {"model"}
        overlaps.append(len({i for i, _, _ in want} & {i for i, _, _ in got}) / len(want))
    assert np.mean(overlaps) >= 0.9, overlaps


def test_exploration_pool_with_an_hnsw_index(monkeypatch) -> None:
    """Every branch of the pool (from the request's one search, exact over few low-exposure rows,
    an exclusion list, over-fetching) returns low-exposure, unblocked rows, close to the exact pool."""
    rng = np.random.default_rng(1)
    n, dim = 3000, 16
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    index = FaissHnswIndex.from_matrix(vectors, np.ones(n, bool), m=16, ef_construction=100, ef_search=200)
    exact = ExactIndex(dim, capacity=n)
    exact.add(np.arange(n), vectors)
    alive = np.ones(n, bool)
    query = rng.standard_normal(dim).astype(np.float32)
    blocked = set(rng.choice(n, 20, replace=False).tolist())
    for low_share, exact_rows, exclude_limit in ((0.9, 10, 10), (0.05, 4096, 4096), (0.2, 10, 4096), (0.2, 10, 10)):
        monkeypatch.setattr(chain, "EXACT_POOL_ROWS", exact_rows)
        monkeypatch.setattr(chain, "EXCLUDE_LIMIT", exclude_limit)
        low = rng.random(n) < low_share
        pool = SourceSearch(index, query, n).pool(low, alive, 50, blocked)
        want = SourceSearch(exact, query, n).pool(low, alive, 50, blocked)
        assert len(pool) > 0 and low[pool].all() and not (set(pool.tolist()) & blocked)
        assert len(set(pool.tolist()) & set(want.tolist())) >= 0.9 * len(want), (low_share, exact_rows, exclude_limit)

"""Ranked lists kept between requests: brought up to date, they equal a fresh scan, never stale."""

from __future__ import annotations

import numpy as np
import pytest

from thaw.serving.chain import SourceSearch
from thaw.serving.index import CHANGE_LOG, ExactIndex, top_k
from thaw.serving.kept_ranks import KeptRanks, RanksKeeper, brought_up_to_date
from thaw.serving.user_cache import KeptPerUser
from tests.serving.test_user_cache import served, tiny_model  # noqa: F401  (fixtures)


def _index(rng: np.random.Generator, n: int, dim: int = 8) -> ExactIndex:
    index = ExactIndex(dim)
    index.add(np.arange(n), rng.standard_normal((n, dim)).astype(np.float32))
    return index


def _kept_setup(seed: int, n: int) -> tuple[ExactIndex, KeptPerUser[KeptRanks], np.ndarray]:
    """An index of n random rows, an empty store of kept lists, and a query."""
    rng = np.random.default_rng(seed)
    index = _index(rng, n)
    return index, KeptPerUser(10), rng.standard_normal(8).astype(np.float32)


def _kept_search(index: ExactIndex, store: KeptPerUser[KeptRanks], query: np.ndarray, n_rows: int, prefetch: int, rows: int) -> SourceSearch:
    """One request's search of user "u", keeping its list in `store` (at most `rows` rows)."""
    return SourceSearch(index, query, n_rows, prefetch, RanksKeeper(store, "u", "model", query, rows))


def _scan(index: ExactIndex, query: np.ndarray, want: int) -> KeptRanks:
    generation = index.generation
    rows, scores = top_k(index.scores(query), want)
    return KeptRanks.from_scan(generation, rows, scores, complete=len(rows) < want)


@pytest.mark.parametrize("seed", range(20))
def test_a_list_brought_up_to_date_is_the_top_of_a_fresh_scan(seed: int) -> None:
    rng = np.random.default_rng(seed)
    index = _index(rng, 300)
    query = rng.standard_normal(8).astype(np.float32)
    kept = _scan(index, query, 40)
    # Writes of every kind: new rows, re-encoded rows (some in the list), removed rows (some in it).
    index.add(np.arange(300, 310), rng.standard_normal((10, 8)).astype(np.float32))
    index.add(kept.rows[[0, 5, 30]], rng.standard_normal((3, 8)).astype(np.float32))
    index.remove(np.concatenate([kept.rows[[1, 2]], rng.choice(300, 5, replace=False)]))
    index.add(np.array([2 * 300]), 10 * query[None])  # a new best row, past a gap of never-added rows
    current = brought_up_to_date(kept, index, query)
    assert current is not None and current.generation == index.generation
    rows, scores = current.exact()
    fresh_rows, fresh_scores = top_k(index.scores(query), len(rows))
    assert len(rows) >= 30  # what was dropped from the list below its floor is not made up
    np.testing.assert_array_equal(rows, fresh_rows)
    np.testing.assert_allclose(scores, fresh_scores, rtol=1e-6)
    assert rows[0] == 600


def test_ties_at_the_floor_are_not_claimed_and_a_complete_list_stays_complete() -> None:
    index = ExactIndex(2)
    index.add(np.arange(6), np.array([[3, 0], [2, 0], [1, 0], [1, 0], [1, 0], [0, 0]], np.float32))
    query = np.array([1, 0], np.float32)
    kept = _scan(index, query, 3)  # rows 0, 1, 2; rows 3 and 4 tie with row 2
    np.testing.assert_array_equal(kept.exact()[0], [0, 1])
    whole = _scan(index, query, 10)
    assert whole.complete
    index.add(np.array([6]), np.array([[-5, 0]], np.float32))
    np.testing.assert_array_equal(brought_up_to_date(whole, index, query).exact()[0], [0, 1, 2, 3, 4, 5, 6])


def test_a_list_older_than_the_change_log_is_rescanned() -> None:
    rng = np.random.default_rng(0)
    index = _index(rng, 50)
    query = rng.standard_normal(8).astype(np.float32)
    kept = _scan(index, query, 10)
    for row in range(CHANGE_LOG + 1):
        index.add(np.array([row % 50]), rng.standard_normal((1, 8)).astype(np.float32))
    assert brought_up_to_date(kept, index, query) is None


def test_a_search_takes_the_kept_list_only_for_the_same_vector_and_enough_rows() -> None:
    index, store, query = _kept_setup(1, 2000)
    first = _kept_search(index, store, query, 2000, 100, 116)
    expected = first.ranked(100)
    assert len(store) == 1 and first._scores is not None  # scanned, then kept (trimmed to 116 rows)
    second = _kept_search(index, store, query, 2000, 100, 116)
    rows, scores = second.ranked(100)
    assert second._scores is None  # no scan
    np.testing.assert_array_equal(rows[:100], expected[0][:100])
    deeper = _kept_search(index, store, query, 2000, 100, 116)
    assert len(deeper.ranked(500)[0]) >= 500 and deeper._scores is not None  # more than was kept: a scan
    other = query + 1.0
    moved = _kept_search(index, store, other, 2000, 100, 116)
    moved.ranked(10)
    assert moved._scores is not None  # another vector: a scan


def test_a_row_written_while_a_request_runs_is_in_the_next_requests_list() -> None:
    # Another worker's item arrives (the change feed adds it) after a request read the catalogue's
    # rows and before it scanned: the scan leaves the row out, so the kept list must not claim
    # the generation that has it (it once did, and the item stayed out of that user's list).
    index, store, query = _kept_setup(3, 200)
    running = _kept_search(index, store, query, 200, 20, 64)
    index.add(np.array([200]), 10 * query[None])  # the best row of all, past the request's 200 rows
    assert 200 not in running.ranked(20)[0]
    following = _kept_search(index, store, query, 201, 20, 64)
    rows, _ = following.ranked(20)
    assert following._scores is None  # the kept list, brought up to date, not a scan
    assert rows[0] == 200
    np.testing.assert_array_equal(rows[:20], top_k(index.scores(query), 20)[0])


def test_the_exploration_pool_read_down_a_kept_list_equals_the_pool_of_a_full_scan() -> None:
    index, store, query = _kept_setup(2, 3000)
    rng = np.random.default_rng(2)
    _kept_search(index, store, query, 3000, 300, 512).ranked(300)
    low = np.ones(3000, bool)
    low[top_k(index.scores(query), 250)[0]] = False  # the 250 most relevant rows are over-exposed
    alive = np.ones(3000, bool)
    blocked = {int(r) for r in rng.choice(3000, 30, replace=False)}
    kept = _kept_search(index, store, query, 3000, 300, 512)
    pool = kept.pool(low, alive, 200, blocked)
    assert kept._scores is None  # read from the kept list, no scan
    np.testing.assert_array_equal(pool, SourceSearch(index, query, 3000, 300).pool(low, alive, 200, blocked))


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_served_lists_match_a_server_that_keeps_nothing_through_item_writes(served, make_client, tiny_model) -> None:  # noqa: F811
    from tests.serving.test_models import _tiny_store

    engine = served.app.state.engine
    kept = engine.model_state.user_ranks
    assert len(kept) == 40  # ranked ahead with the vectors
    params = {"k": 8}
    users = ("u0", "u3", "u11")
    before = {u: _ids(served.get(f"/users/{u}/recommendations", params=params)) for u in users}
    assert kept.hits >= len(users)
    # Items change: one new, close to what u3 bought; one re-encoded; one deleted.
    bought = engine.profile_of("u3").rows[0]
    title = engine.catalogue.title_of(int(bought))
    assert served.post("/items", json={"id": "fresh", "title": title}).status_code == 200
    assert served.patch("/items/cook-2", json={"title": "Space robots at war"}).status_code == 200
    gone = before["u0"][0]
    assert served.delete(f"/items/{gone}").status_code == 204
    hits = kept.hits
    after = {u: served.get(f"/users/{u}/recommendations", params=params).json()["items"] for u in users}
    assert kept.hits > hits  # lists brought up to date, not rescanned
    assert all(gone not in [i["id"] for i in items] for items in after.values())
    assert "fresh" in [i["id"] for i in after["u3"]]
    # The same store served by a server that keeps no lists (nor vectors) ranks the same way: the
    # model-served rows of each list are a prefix of one relevance order (exploration takes the rest).
    reference = make_client({"model": tiny_model, "model_metrics": {}}, history_cache_users=0, warm_users=0)
    for user, items in after.items():
        ours = [i["id"] for i in items if i["source"] == "model"]
        theirs = [i["id"] for i in reference.get(f"/users/{user}/recommendations", params=params).json()["items"]
                  if i["source"] == "model"]
        shorter, longer = sorted((ours, theirs), key=len)
        assert len(shorter) >= 3 and longer[: len(shorter)] == shorter, (user, ours, theirs)


def test_similar_items_are_kept_and_brought_up_to_date(served) -> None:  # noqa: F811
    engine = served.app.state.engine
    kept = engine.model_state.item_ranks
    first = _ids(served.get("/items/space-1/similar", params={"k": 5}))
    assert len(kept) == 1
    hits = kept.hits
    assert _ids(served.get("/items/space-1/similar", params={"k": 5})) == first
    assert kept.hits == hits + 1
    assert served.delete(f"/items/{first[0]}").status_code == 204
    assert first[0] not in _ids(served.get("/items/space-1/similar", params={"k": 5}))


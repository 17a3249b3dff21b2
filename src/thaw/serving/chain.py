"""The fallback chain and the exploration slots: how a list of k is filled, source by source.

Each source searches its own index with the person's vector in that source. An exact index is
scanned once per request and the scores are shared by the chain and the exploration pool; an
approximate (HNSW) index is searched instead, and the exploration pool is scored exactly over the
low-exposure rows when they are few, or taken from the index's results when they are many.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from thaw.data.records import ImpressionRecord, now_utc
from thaw.serving.adaptive import is_exact
from thaw.serving.exploration import explore_positions, n_explore_slots, thompson_pick
from thaw.serving.index import VectorIndex, padded_scores, top_k
from thaw.serving.kept_ranks import KeptRanks, RanksKeeper, brought_up_to_date
from thaw.serving.queries import Queries, queries_for
from thaw.serving.ranking import Profile, Scored, explain_rows

if TYPE_CHECKING:
    from thaw.serving.engine import Engine, ModelState
    from thaw.serving.user_cache import KeptPerUser

Served = tuple[int, float, str, Any]
"""(catalogue row, score, source, extra): extra is the ExplorationPick of an explored row."""


@dataclass(frozen=True)
class RecommendationList:
    """A served list, the request id its impressions are logged under, and the model version."""

    items: list[Scored]
    request_id: str
    model_version: str

EXACT_POOL_ROWS = 4096  # below this many low-exposure rows, the pool is scored exactly over them
EXCLUDE_LIMIT = 4096  # above this many rows to leave out, the index is over-fetched and filtered
EXCLUDE_RANKED = 256  # above this many rows to skip (seen items), a graph search excludes them itself
SIMILAR_KEPT_ROWS = 64  # an item's similar items kept between requests
KEPT_ROWS = 512  # a user's kept list: at least this many rows, or what a request fetches and a few more


def kept_rows(prefetch: int) -> int:
    """How many rows of a user's list to keep: enough for the chain and, usually, the exploration pool
    (its low-exposure rows are read down the list; the floor's own row is not exact)."""
    return max(prefetch + 16, KEPT_ROWS)



class SourceSearch:
    """One source's query vector against its index, for one request: one scan or one graph search.

    `ranked(m)` holds the best rows, best first; the chain and the exploration pool both read
    their rows from it, so an exact index is scanned (and partially sorted) once per request and
    an HNSW index searched once, for `prefetch` rows (the chain's and the pool's together).
    """

    def __init__(
        self, index: VectorIndex, vector: np.ndarray, n_rows: int, prefetch: int = 0, keeper: RanksKeeper | None = None,
        generation: int | None = None,
    ) -> None:
        """`n_rows`: the catalogue's rows when the request began; `generation`: the index's generation
        read before that (default: now). A scan is kept as of that generation, so a row written after
        n_rows was read, which the scan leaves out, is rescored by the next request."""
        self.index = index
        self.vector = np.asarray(vector, np.float32)
        self.n_rows = n_rows
        self.prefetch = prefetch
        self.exact = is_exact(index)
        self.keeper = keeper if self.exact else None  # where this query's ranked list is kept (kept_ranks.py)
        self._scores: np.ndarray | None = None
        self._generation = getattr(index, "generation", -1) if generation is None else generation
        self._ranked: tuple[np.ndarray, np.ndarray] | None = None
        self._complete = False  # `_ranked` holds every row there is

    def scores(self) -> np.ndarray:
        """Scores against every catalogue row, computed once: (n_rows,) float32."""
        if self._scores is None:
            self._scores = padded_scores(self.index, self.vector, self.n_rows)
        return self._scores

    def ranked(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """At least the m best rows (fewer when there are fewer) and their scores, best first."""
        if self._ranked is None or (len(self._ranked[0]) < m and not self._complete):
            if self.exact:
                if not self._from_kept(m):
                    want = max(m, self.prefetch, 512)  # the partial sort costs the same for a few hundred
                    self._ranked = top_k(self.scores(), want)
                    self._complete = len(self._ranked[0]) < want
                    if self.keeper is not None and self._generation >= 0:
                        self.keeper.put(KeptRanks.from_scan(self._generation, *self._ranked, self._complete))
            else:
                want = max(m, self.prefetch)
                rows, scores = self.index.search(self.vector[None], want)
                found = rows[0] >= 0
                self._ranked = (rows[0][found], scores[0][found])
                self._complete = len(self._ranked[0]) < want
        return self._ranked

    def _from_kept(self, m: int) -> bool:
        """Take the ranked list kept from an earlier request, brought up to date, if it has m exact rows."""
        if self.keeper is None or self._scores is not None:
            return False
        kept = self.keeper.get()
        current = None if kept is None else brought_up_to_date(kept, self.index, self.vector)
        if current is None:
            return False
        rows, scores = current.exact()
        inside = rows < self.n_rows  # rows added since this request began wait for the next one, as in a scan
        rows, scores = rows[inside], scores[inside]
        if len(rows) < m and not current.complete:
            return False
        if current is not kept:
            self.keeper.put(current)
        self._ranked, self._complete = (rows, scores), current.complete
        return True

    def top(self, k: int, taken: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows not in `taken`, best first (ties by lower row)."""
        if not self.exact and len(taken) > EXCLUDE_RANKED:
            # A long history: let the graph search skip it rather than fetch past it.
            exclude = np.fromiter(taken, np.int64, len(taken))
            rows, scores = self.index.search(self.vector[None], k, [exclude])
            keep = rows[0] >= 0
            return rows[0][keep], scores[0][keep]
        # At most len(taken) of the best k + len(taken) rows are taken: the rest hold the answer.
        m = k + len(taken)
        rows, values = self.ranked(m)
        rows, values = rows[:m], values[:m]
        keep = _outside(rows, taken)
        return rows[keep][:k], values[keep][:k]

    def pool(self, low: np.ndarray, alive: np.ndarray, size: int, blocked: set[int]) -> np.ndarray:
        """Up to `size` low-exposure rows (`low`, (n,) bool) not `blocked`, most relevant first."""
        # Usually most rows are low-exposure: the best rows already fetched hold the pool.
        m = size + len(blocked) + 64
        ranked = self.ranked(m)[0]
        everything = self._complete and len(ranked) <= m  # no other row exists
        rows = ranked if self.exact else ranked[:m]  # an exact list is a prefix of the scan: all of it may serve
        rows = rows[rows < len(low)]  # rows added since `low` was read wait for the next request
        rows = rows[low[rows] & _outside(rows, blocked)]
        if len(rows) >= size or everything:
            return rows[:size]
        if self.exact:
            relevance = self.scores()
            m = min(len(low), len(relevance))  # rows added since the scan are not in it
            scores = np.where(low[:m], relevance[:m], -np.inf).astype(np.float32)
            return top_excluding(scores, size, blocked)[0]
        blocked_rows = np.fromiter(blocked, np.int64, len(blocked))
        candidates = np.flatnonzero(low)
        if len(blocked_rows):
            candidates = candidates[~np.isin(candidates, blocked_rows)]
        if len(candidates) <= EXACT_POOL_ROWS:
            order, _ = top_k(self.index.vectors(candidates) @ self.vector, size)  # ties: lower row first
            return candidates[order]
        high = np.flatnonzero(alive & ~low)
        if len(high) + len(blocked_rows) <= EXCLUDE_LIMIT:
            rows, _ = self.index.search(self.vector[None], size, [np.concatenate([high, blocked_rows])])
            return rows[0][rows[0] >= 0]
        # Most rows are to be left out: fetch enough to keep `size` of the low-exposure ones.
        fetch = int(min(alive.sum(), size * alive.sum() / max(len(candidates), 1) * 1.5 + len(blocked_rows)))
        rows, _ = self.index.search(self.vector[None], max(fetch, size), None)
        rows = rows[0][rows[0] >= 0]
        rows = rows[(rows < len(low))]
        rows = rows[low[rows] & ~np.isin(rows, blocked_rows)]
        return rows[:size]


def searches_for(
    engine: Engine, state: ModelState | None, prefetch: int = 0, kept: tuple[KeptPerUser[KeptRanks], str, int] | None = None
) -> Callable[[str, np.ndarray], SourceSearch]:
    """A factory of SourceSearch per (source, vector) for one request, each made once.

    `kept` (store, name, rows): the model source's ranked list is kept there under `name`, at most
    `rows` long (a stored user's, or an item's similar items).
    """
    made: dict[str, SourceSearch] = {}
    model_index = state.index if state is not None else None
    # Generations first: a write after these readings is rescored by the next request, even one the
    # scan leaves out because its row lies past n_rows.
    generations = {id(i): getattr(i, "generation", -1) for i in (model_index, engine.content_index) if i is not None}
    n_rows = engine.catalogue.n_rows

    def search(source: str, vector: np.ndarray) -> SourceSearch:
        if source not in made:
            index = model_index if source == "model" and model_index is not None else engine.content_index
            keeper = None
            if kept is not None and source == "model":
                store, name, rows = kept
                keeper = RanksKeeper(store, name, source, vector, rows)
            made[source] = SourceSearch(index, vector, n_rows, prefetch, keeper, generations[id(index)])
        return made[source]

    return search


def fill(
    engine: Engine,
    queries: Queries,
    k: int,
    exclude: np.ndarray,
    search: Callable[[str, np.ndarray], SourceSearch],
) -> list[Served]:
    """Up to k rows: each source with a query vector in turn, then popularity tops the list up."""
    served: list[Served] = []
    taken = set(exclude.tolist())
    for source in queries.sources:
        if len(served) >= k:
            break
        vector = queries.vector(source)
        if vector is None:
            continue
        rows, top = search(source, vector).top(k - len(served), taken)
        served.extend((int(r), float(s), source, None) for r, s in zip(rows, top, strict=True))
        taken.update(rows.tolist())
    if len(served) < k:
        popularity = engine.catalogue.popularity.view(engine.catalogue.n_rows).astype(np.float32)
        popularity = np.where(engine.catalogue.alive(), popularity, -np.inf).astype(np.float32)
        rows, top = top_excluding(popularity, k - len(served), taken)
        served.extend((int(r), float(s), "popularity", None) for r, s in zip(rows, top, strict=True))
    return served


def _outside(rows: np.ndarray, taken: set[int]) -> np.ndarray:
    """(len(rows),) bool: which rows are not in `taken`."""
    return np.fromiter((row not in taken for row in rows.tolist()), bool, len(rows))


def top_excluding(scores: np.ndarray, k: int, taken: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """top_k of `scores` with the `taken` rows left out (no copy of `scores`)."""
    if not taken:
        return top_k(scores, k)
    # At most len(taken) of the best k + len(taken) rows are taken: the rest hold the answer.
    rows, values = top_k(scores, k + len(taken))
    keep = ~np.isin(rows, np.fromiter(taken, np.int64, len(taken)))
    return rows[keep][:k], values[keep][:k]


def explore(
    engine: Engine,
    served: list[Served],
    queries: Queries,
    k: int,
    exclude: np.ndarray,
    search: Callable[[str, np.ndarray], SourceSearch],
    rng: np.random.Generator,
    user: str | None = None,
) -> list[Served]:
    """Replace about share*k slots with low-exposure rows chosen by Thompson sampling.

    The stored `user`'s generated candidates that are still low-exposure are drawn first; the
    user's most relevant low-exposure rows fill the slots they leave.
    """
    config = engine.config.exploration
    n_slots = n_explore_slots(config.share, min(k, len(served)), rng) if config.share > 0 else 0
    if n_slots == 0:
        return served
    n = engine.catalogue.n_rows
    impressions = engine.catalogue.impressions.view(n)
    clicks = engine.catalogue.clicks.view(n)
    alive = engine.catalogue.alive()
    low = alive & (impressions < config.max_impressions)
    kept = served[: len(served) - n_slots]
    blocked = set(exclude.tolist()) | {row for row, *_ in kept}
    rows, confidence = engine.generated.rows_of(user, engine.catalogue)
    inside = rows < n  # rows added since `low` was read wait for the next request
    rows, confidence = rows[inside], confidence[inside]
    fresh = low[rows] & _outside(rows, blocked)
    picks = thompson_pick(rows[fresh], impressions, clicks, n_slots, config, rng, confidence[fresh])
    if len(picks) < n_slots:
        blocked |= {pick.row for pick in picks}
        primary = queries.primary()
        if primary is not None:
            pool = search(*primary).pool(low, alive, config.pool, blocked)
        else:
            # No signal about the person: any low-exposure item may be explored.
            candidates = np.setdiff1d(np.flatnonzero(low), np.fromiter(blocked, np.int64, len(blocked)))
            pool = rng.permutation(candidates)[: config.pool]
        picks += thompson_pick(pool, impressions, clicks, n_slots - len(picks), config, rng)
    if not picks:
        return served
    positions = explore_positions(len(picks), min(k, len(served)))
    rest = iter(kept + [s for s in served[len(kept):] if s[0] not in {p.row for p in picks}])
    out: list[Served] = []
    explored = iter(picks)
    for position in range(min(k, len(served))):
        if position in positions:
            pick = next(explored)
            out.append((pick.row, pick.draw, "exploration", pick))
        else:
            out.append(next(rest))
    return out


def default_prefetch(engine: Engine, k: int, n_excluded: int) -> int:
    """Rows a request fetches from its first source: the list, the rows it skips, the exploration pool."""
    exploring = engine.config.exploration
    return k + n_excluded + (exploring.pool + 64 if exploring.share > 0 else 0)


def recommend(engine: Engine, profile: Profile, k: int, *, exclude_seen: bool, explain: bool) -> RecommendationList:
    """The top k for a profile through the fallback chain, with exploration slots; impressions logged."""
    exclude = profile.seen if exclude_seen else np.empty(0, np.int64)
    state = engine.model_state
    queries = queries_for(engine, profile, state)
    # One search serves the chain and the exploration pool: fetch for both at once.
    prefetch = default_prefetch(engine, k, len(exclude))
    stored = state is not None and profile.user is not None and profile.version is not None
    kept = (state.user_ranks, profile.user, kept_rows(prefetch)) if stored else None  # type: ignore[union-attr]
    search = searches_for(engine, state, prefetch, kept)
    rng = np.random.default_rng([engine.config.exploration.seed, next(engine._requests)])
    served = fill(engine, queries, k, exclude, search)
    served = explore(engine, served, queries, k, exclude, search, rng, profile.user)
    items = _scored(engine, served, profile, state, explain)
    request_id = uuid.uuid4().hex
    _log_impressions(engine, items, profile.user, request_id)
    return RecommendationList(items, request_id, state.version if state else "content")


def similar(engine: Engine, row: int, k: int, *, explain: bool) -> RecommendationList:
    """Items closest to catalogue `row` (model space, else content), topped up by popularity."""
    state = engine.model_state
    anchor = np.array([row])
    sources: list[tuple[str, Callable[[], np.ndarray | None]]] = []
    if state is not None:
        sources.append(("model", lambda: _item_query(state, anchor)))
    sources.append(("content", lambda: engine.content_index.vectors(anchor)[0]))
    kept = (state.item_ranks, str(row), SIMILAR_KEPT_ROWS) if state is not None else None
    served = fill(engine, Queries(sources), k, anchor, searches_for(engine, state, kept=kept))
    profile = Profile(None, {}, None, anchor, np.ones(1, np.float32), anchor)
    items = _scored(engine, served, profile, state, explain)
    return RecommendationList(items, uuid.uuid4().hex, state.version if state else "content")


def _item_query(state: ModelState, anchor: np.ndarray) -> np.ndarray:
    """The anchor's model vector as a similar-items query (the model's `item_queries`, if it has one)."""
    vector = state.index.vectors(anchor)
    queries = getattr(state.model, "item_queries", None)
    return (queries(vector) if queries is not None else vector)[0]


def _scored(engine: Engine, served: list[Served], profile: Profile, state: ModelState | None, explain: bool) -> list[Scored]:
    catalogue = engine.catalogue
    return [
        Scored(
            catalogue.id_of(row),
            catalogue.title_of(row),
            score,
            source,
            explain_rows(engine, profile, row, source, state, extra) if explain else None,
        )
        for row, score, source, extra in served
    ]


def _log_impressions(engine: Engine, items: list[Scored], user: str | None, request_id: str) -> None:
    if not items:
        return
    rows = engine.catalogue.rows([s.item for s in items])
    with engine.catalogue.lock:
        engine.catalogue.impressions.add(rows, 1.0)
    if engine.config.log_impressions:
        now = now_utc()
        engine.impressions.add(
            [ImpressionRecord(s.item, position, s.source, request_id, now, user) for position, s in enumerate(items)]
        )

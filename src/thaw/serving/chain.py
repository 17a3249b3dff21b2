"""The fallback chain and the exploration slots: how a list of k is filled, source by source."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from thaw.serving.exploration import explore_positions, n_explore_slots, thompson_pick
from thaw.serving.index import padded_scores, top_k

if TYPE_CHECKING:
    from thaw.serving.engine import Engine, ModelState

Served = tuple[int, float, str, Any]
"""(catalogue row, score, source, extra): extra is the ExplorationPick of an explored row."""


def fill(
    engine: Engine,
    queries: list[tuple[str, np.ndarray | None]],
    k: int,
    exclude: np.ndarray,
    state: ModelState | None,
    computed: dict[str, np.ndarray] | None = None,
) -> list[Served]:
    """Up to k rows: each source with a query vector in turn, then popularity tops the list up.

    Each source's full score vector (n_rows,) is left in `computed` for `explore` to reuse: one
    pass over the catalogue's vectors per source and request.
    """
    served: list[tuple[int, float, str, Any]] = []
    taken = set(exclude.tolist())
    computed = {} if computed is None else computed
    for source, vector in queries:
        if vector is None or len(served) >= k:
            continue
        scores = source_scores(engine, source, vector, state, computed)
        rows, top = top_excluding(scores, k - len(served), taken)
        served.extend((int(r), float(s), source, None) for r, s in zip(rows, top, strict=True))
        taken.update(rows.tolist())
    if len(served) < k:
        popularity = engine.catalogue.popularity.view(engine.catalogue.n_rows).astype(np.float32)
        popularity = np.where(engine.catalogue.alive(), popularity, -np.inf).astype(np.float32)
        rows, top = top_excluding(popularity, k - len(served), taken)
        served.extend((int(r), float(s), "popularity", None) for r, s in zip(rows, top, strict=True))
    return served

def source_scores(
    engine: Engine, source: str, vector: np.ndarray, state: ModelState | None, computed: dict[str, np.ndarray]
) -> np.ndarray:
    """Scores of `vector` against every catalogue row in `source`'s index, computed once."""
    if source not in computed:
        index = state.index if source == "model" and state is not None else engine.content_index
        computed[source] = padded_scores(index, vector, engine.catalogue.n_rows)
    return computed[source]


def top_excluding(scores: np.ndarray, k: int, taken: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """top_k of `scores` with the `taken` rows left out."""
    if taken:
        drop = np.fromiter((t for t in taken if t < len(scores)), np.int64)
        scores = scores.copy()
        scores[drop] = -np.inf
    return top_k(scores, k)


def explore(
    engine: Engine,
    served: list[tuple[int, float, str, Any]],
    queries: list[tuple[str, np.ndarray | None]],
    k: int,
    exclude: np.ndarray,
    state: ModelState | None,
    rng: np.random.Generator,
    computed: dict[str, np.ndarray] | None = None,
) -> list[tuple[int, float, str, Any]]:
    """Replace about share*k slots with low-exposure rows chosen by Thompson sampling."""
    config = engine.config.exploration
    n_slots = n_explore_slots(config.share, min(k, len(served)), rng) if config.share > 0 else 0
    if n_slots == 0:
        return served
    n = engine.catalogue.n_rows
    impressions = engine.catalogue.impressions.view(n)
    clicks = engine.catalogue.clicks.view(n)
    low = engine.catalogue.alive() & (impressions < config.max_impressions)
    kept = served[: len(served) - n_slots]
    blocked = set(exclude.tolist()) | {row for row, *_ in kept}
    primary = next(((s, v) for s, v in queries if v is not None), None)
    if primary is not None:
        relevance = source_scores(engine, primary[0], primary[1], state, {} if computed is None else computed)
        scores = np.where(low, relevance[:n], -np.inf).astype(np.float32)
        pool, _ = top_excluding(scores, config.pool, blocked)
    else:
        # No signal about the person: any low-exposure item may be explored.
        candidates = np.setdiff1d(np.flatnonzero(low), np.fromiter(blocked, np.int64, len(blocked)))
        pool = rng.permutation(candidates)[: config.pool]
    picks = thompson_pick(pool, impressions, clicks, n_slots, config, rng)
    if not picks:
        return served
    positions = explore_positions(len(picks), min(k, len(served)))
    rest = iter(kept + [s for s in served[len(kept):] if s[0] not in {p.row for p in picks}])
    out: list[tuple[int, float, str, Any]] = []
    explored = iter(picks)
    for position in range(min(k, len(served))):
        if position in positions:
            pick = next(explored)
            out.append((pick.row, pick.draw, "exploration", pick))
        else:
            out.append(next(rest))
    return out

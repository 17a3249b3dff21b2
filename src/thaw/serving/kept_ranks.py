"""Best rows kept between requests: brought up to date, not recomputed, when items change.

Serving a stored user scans the whole exact index and partially sorts it: 2.8 ms of the 7 ms a
request cost at 17k items on the benchmark machine. The answer changes only when the person's
vector changes or rows of the index are written. So each stored user's ranked list (and each
item's, for similar items) is kept with:

- its query vector;
- the index generation it was computed at;
- a floor: every row scoring above it is in the list.

On the next request with the same vector, the index's change log names the rows written since
then. Those rows are dropped from the list and rescored against the current index (a removed
row scores -inf and stays out), then merged back in. Rows that were not written keep their
scores. So the part of the list above the floor is exactly the top of a fresh scan, ties broken
by lower row.

A full scan happens instead when:
- the request needs more rows than that;
- the vector changed (a new event, new attributes, a re-encoded history item);
- the index's log no longer reaches back to the list's generation.

Freshness is unchanged: a new item is scored on the very next request of every kept user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from thaw.serving.user_cache import Key, KeptPerUser


@dataclass(frozen=True)
class KeptRanks:
    """One query's best rows at one index generation."""

    generation: int
    rows: np.ndarray  # (m,) int64, best first (equal scores: lower row first)
    scores: np.ndarray  # (m,) float32
    floor: float  # every live row scoring above it is in `rows`; -inf when `rows` holds every live row

    @classmethod
    def from_scan(cls, generation: int, rows: np.ndarray, scores: np.ndarray, complete: bool) -> KeptRanks:
        """The top rows of a full scan; `complete` when the scan returned every live row."""
        floor = -np.inf if complete or len(scores) == 0 else float(scores[-1])
        return cls(generation, np.asarray(rows, np.int64), np.asarray(scores, np.float32), floor)

    @property
    def complete(self) -> bool:
        return self.floor == -np.inf

    def exact(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows (and scores) a fresh scan would rank first, in its order: those above the floor."""
        if self.complete:
            return self.rows, self.scores
        above = self.scores > self.floor  # a tie with the floor may hide an unkept row of lower id
        return self.rows[above], self.scores[above]


def brought_up_to_date(kept: KeptRanks, index: Any, query: np.ndarray) -> KeptRanks | None:
    """`kept` with the rows written since its generation rescored; None when that cannot be known."""
    generation = index.generation  # read first: a write after this is rescored again next time
    if generation == kept.generation:
        return kept
    changed = index.changed_since(kept.generation)
    if changed is None or generation < 0:
        return None
    changed = np.unique(changed)
    stay = ~np.isin(kept.rows, changed)
    fresh = index.row_scores(changed, query)
    keep = fresh > kept.floor  # live and above the floor (below it, the list knows nothing anyway)
    rows = np.concatenate([kept.rows[stay], changed[keep]])
    scores = np.concatenate([kept.scores[stay], fresh[keep]]).astype(np.float32)
    order = np.lexsort((rows, -scores))
    return KeptRanks(generation, rows[order], scores[order], kept.floor)


class RanksKeeper:
    """Where one SourceSearch finds and leaves its kept list: an LRU, a name in it, and the vector."""

    def __init__(self, store: KeptPerUser[KeptRanks], name: str, source: str, vector: np.ndarray, limit: int) -> None:
        self.store = store
        self.name = name
        self.key: Key = (source, np.asarray(vector, np.float32).tobytes())
        self.limit = limit  # rows kept at most (the rest is below the floor)

    def get(self) -> KeptRanks | None:
        return self.store.get(self.name, self.key)

    def put(self, kept: KeptRanks) -> None:
        if len(kept.rows) > self.limit:
            floor = max(kept.floor, float(kept.scores[self.limit - 1]))
            kept = KeptRanks(kept.generation, kept.rows[: self.limit].copy(), kept.scores[: self.limit].copy(), floor)
        kept.rows.setflags(write=False)
        kept.scores.setflags(write=False)
        self.store.put(self.name, self.key, kept)

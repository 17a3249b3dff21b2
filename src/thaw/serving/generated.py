"""Generated feedback as exposure candidates: the new items generated for a user, explored first.

`thaw train --generated-feedback N` stores, for each new item, the N users it would most
plausibly suit as `generated` events with a calibrated confidence (thaw.data.generated). Serving
reads them all in one query at start and again whenever popularity is recounted (every
`stats_refresh_seconds`, or within a second of a deleted user), keeping each user's `pool` most
confident items. Nothing here counts as real data: popularity, histories and training never see
generated events; these candidates only decide which low-exposure items a user's exploration slots
consider first (thaw.serving.chain.explore).

This worker drops candidates at once when it deletes an item or a user, or drops generated events
itself (`Engine.drop_generated`); a deletion made elsewhere (another worker, `delete_generated_events`
from a script) reaches it with the next recount.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

from thaw.data.generated import drop_generated, generated_by_user, generated_version
from thaw.data.store import Store
from thaw.serving.catalogue import Catalogue
from thaw.serving.config import ExplorationConfig

log = logging.getLogger(__name__)


class GeneratedCandidates:
    """Each user's generated new items, most confident first: {user: [(item id, confidence)]}."""

    def __init__(self, store: Store, config: ExplorationConfig) -> None:
        self.store = store
        self.config = config
        self._by_user: dict[str, list[tuple[str, float]]] = {}
        self._version: tuple[int, int, str] | None = None  # of the generated events `_by_user` holds
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether exploration uses generated candidates (the setting, and exploration itself, on)."""
        return self.config.generated_candidates and self.config.share > 0

    def refresh(self) -> int:
        """Re-read every user's candidates from the store if its generated events changed; how many pairs.

        One aggregate query tells whether they changed (30 ms on the CiteULike store's 205k
        events); reading 68k pairs took 270 ms, so unchanged pairs are not read again.
        """
        if not self.enabled:
            return 0
        version = generated_version(self.store)
        if version != self._version:
            fresh = generated_by_user(self.store, per_user=self.config.pool)
            with self._lock:
                self._by_user, self._version = fresh, version
        return len(self)

    def of(self, user: str | None) -> list[tuple[str, float]]:
        """A user's candidates, most confident first ([] for someone not stored, or with none)."""
        if user is None or not self.enabled:
            return []
        with self._lock:
            return list(self._by_user.get(user, ()))

    def rows_of(self, user: str | None, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
        """The user's candidates that are live in `catalogue`: (m,) int64 rows, (m,) float64 confidences."""
        pairs = self.of(user)
        if not pairs:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        rows, live = catalogue.rows_of([item for item, _ in pairs])
        confidence = np.fromiter((c for _, c in pairs), np.float64, len(pairs))[live]
        return rows, confidence

    def forget_user(self, user: str) -> None:
        """Drop a deleted user's candidates now (the store dropped their events with them)."""
        with self._lock:
            self._by_user.pop(user, None)
            self._version = None

    def forget_items(self, items: Sequence[str] | None = None) -> None:
        """Drop the candidates of `items` (all when None) from memory only."""
        with self._lock:
            self._version = None  # re-read on the next refresh, whatever the store holds then
            if items is None:
                self._by_user = {}
                return
            gone = set(items)
            if not gone:
                return
            self._by_user = {
                user: kept
                for user, pairs in self._by_user.items()
                if (kept := [pair for pair in pairs if pair[0] not in gone])
            }

    def drop(self, items: Sequence[str] | None = None) -> int:
        """Delete generated events (of `items`, or all) from the store and this worker; how many events."""
        deleted = drop_generated(self.store, items)
        self.forget_items(items)
        log.info("generated feedback dropped", extra={"events": deleted, "items": "all" if items is None else len(items)})
        return deleted

    def __len__(self) -> int:
        with self._lock:
            return sum(len(pairs) for pairs in self._by_user.values())

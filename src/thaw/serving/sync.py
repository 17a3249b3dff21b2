"""Keeping several workers on one store in step: replay the store's change log of catalogue writes.

Every item write (by any worker, or `thaw ingest`) appends a row to the store's change log in the
same transaction, and a worker that swaps in a retrained model logs where it saved it. Each
worker polls the rows above the last id it applied, reconciles those items with the store (added,
changed or deleted) and adopts the newest logged model. Ids are handed out before a transaction commits,
so on PostgreSQL and MariaDB a lower id can become visible after a higher one: the reader keeps its
position below such a gap, re-reading past it (applied ids are skipped) until the gap fills or
`gap_seconds` pass (a rolled-back id never fills). A periodic full reconciliation
(`Engine.sync_catalogue`) is the safety net for anything committed later than that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from thaw.data.store import Store

log = logging.getLogger(__name__)

BATCH = 5000


class ChangeFeed:
    """The position of one worker in the store's change log, and the replay of what lies past it."""

    def __init__(
        self,
        store: Store,
        apply: Callable[[list[str]], None],
        *,
        gap_seconds: float = 30.0,
        on_model: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.apply = apply  # reconciles these item ids with the store
        self.on_model = on_model  # adopts the model version saved at this path (the newest logged)
        self.gap_seconds = gap_seconds
        self.position = 0  # every change id <= position is applied (or given up on)
        self._applied: set[int] = set()  # applied ids above `position`
        self._gaps: dict[int, float] = {}  # missing id -> when it was first missed
        self._lock = threading.Lock()
        self.polled_at = 0.0
        self.applied_total = 0

    def start_at(self, change_id: int) -> None:
        """Treat every change up to `change_id` as applied (the catalogue was just read in full)."""
        with self._lock:
            self.position = change_id
            self._applied.clear()
            self._gaps.clear()

    def poll(self) -> int:
        """Apply the changes written since the last poll; returns how many item ids were reconciled."""
        with self._lock:
            total = 0
            cursor = self.position
            while True:
                rows = self.store.changes_after(cursor, limit=BATCH)
                fresh = [(i, kind, key) for i, kind, key in rows if i not in self._applied]
                keys = list(dict.fromkeys(key for _, kind, key in fresh if kind == "item"))
                if keys:
                    self.apply(keys)
                    total += len(keys)
                models = [key for _, kind, key in fresh if kind == "model"]
                if models and self.on_model is not None:
                    self.on_model(models[-1])  # only the newest version matters: every worker converges on it
                self._applied.update(i for i, _, _ in fresh)
                if len(rows) < BATCH:
                    break
                cursor = rows[-1][0]
            self._advance()
            self.polled_at = time.monotonic()
            self.applied_total += total
            return total

    def _advance(self) -> None:
        now = time.monotonic()
        while self._applied:
            following = self.position + 1
            if following in self._applied:
                self._applied.discard(following)
                self._gaps.pop(following, None)
                self.position = following
                continue
            # A hole below applied ids: an uncommitted (or rolled-back) id. Wait for it a while.
            lowest = min(self._applied)
            since = self._gaps.setdefault(following, now)
            if now - since < self.gap_seconds:
                return
            log.debug("change ids %d..%d never appeared: moving past them", following, lowest - 1)
            self._gaps = {missing: at for missing, at in self._gaps.items() if missing >= lowest}
            self.position = lowest - 1

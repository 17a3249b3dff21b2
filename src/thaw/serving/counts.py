"""Per-item counters behind popularity and exploration: updated as events arrive, recounted from the store.

Local increments make a new event count at once in this worker; an exact recount from the store
every `stats_refresh_seconds` (or within a second when local increments cannot be trusted, after a
batch with duplicates or a deleted user) brings in what other workers saw.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from thaw.data.records import EventRecord, WriteResult
from thaw.data.store import Store
from thaw.serving.catalogue import Catalogue
from thaw.serving.config import ServeConfig
from thaw.serving.exploration import ImpressionLog
from thaw.serving.people import event_weights


class Counters:
    """Popularity, clicks and impressions per catalogue row, kept in step with the store."""

    def __init__(self, store: Store, catalogue: Catalogue, config: ServeConfig, impressions: ImpressionLog) -> None:
        self.store = store
        self.catalogue = catalogue
        self.config = config
        self.impressions = impressions
        self.dirty = threading.Event()
        self.refreshed_at = 0.0

    def add_events(self, records: list[EventRecord]) -> WriteResult:
        """Append events (idempotent by key) and count them."""
        result = self.store.add_events(records)
        if result.unchanged:
            self.dirty.set()  # which ones were duplicates is unknown: recount from the store
            return result
        rows = self.catalogue.rows([e.item for e in records])
        if len(rows) == len(records):
            weights = event_weights([e.type for e in records], [e.value for e in records], self.config)
            clicks = np.array([e.type in self.config.exploration.click_types for e in records], np.float64)
            with self.catalogue.lock:
                self.catalogue.popularity.add(rows, weights.astype(np.float64))
                self.catalogue.clicks.add(rows, clicks)
        return result

    def due(self) -> bool:
        """Whether a recount is asked for or `stats_refresh_seconds` have passed."""
        stale = time.monotonic() - self.refreshed_at > self.config.stats_refresh_seconds
        return self.dirty.is_set() or stale

    def refresh(self) -> None:
        """Recount popularity, clicks and impressions from the store (exact; also syncs workers)."""
        self.dirty.clear()
        if self.config.log_impressions:
            self.impressions.flush()
        weights = self.config.weights
        totals = self.store.event_totals()  # (item, type, count, sum of values)
        shown = self.store.impression_counts()
        # Map ids to rows and weigh outside the lock: readers (and the GIL) wait only for the swap.
        n = self.catalogue.n_rows
        rows = np.fromiter((_row(self.catalogue, item) for item, _, _, _ in totals), np.int64, len(totals))
        counts = np.fromiter((c for _, _, c, _ in totals), np.float64, len(totals))
        value_sums = np.fromiter((v for _, _, _, v in totals), np.float64, len(totals))
        types = [t for _, t, _, _ in totals]
        per_type = np.array([getattr(weights, t, 0.0) for t in types], np.float64)
        rated = np.array([t == "rating" for t in types], bool)
        # A rating's weight scales with value / max_rating (capped at 1 per event).
        strength = np.where(rated, weights.rating * np.minimum(value_sums / weights.max_rating, counts), per_type * counts)
        clicked = np.array([t in self.config.exploration.click_types for t in types], bool)
        known = (rows >= 0) & (rows < n)
        popularity = np.bincount(rows[known], strength[known], minlength=n)[:n]
        clicks = np.bincount(rows[known], np.where(clicked, counts, 0.0)[known], minlength=n)[:n]
        shown_rows = np.fromiter((_row(self.catalogue, item) for item in shown), np.int64, len(shown))
        shown_counts = np.fromiter(shown.values(), np.float64, len(shown))
        keep = (shown_rows >= 0) & (shown_rows < n)
        impressions = np.zeros(n)
        impressions[shown_rows[keep]] = shown_counts[keep]
        with self.catalogue.lock:
            all_rows = np.arange(n)
            self.catalogue.popularity.set(all_rows, popularity)
            self.catalogue.clicks.set(all_rows, clicks)
            self.catalogue.impressions.set(all_rows, impressions)
        self.refreshed_at = time.monotonic()


def _row(catalogue: Catalogue, item: str) -> int:
    row = catalogue.row(item)
    return -1 if row is None else row

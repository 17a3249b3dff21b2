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
        totals = self.store.event_totals()
        shown = self.store.impression_counts()
        with self.catalogue.lock:
            n = self.catalogue.n_rows
            popularity = np.zeros(n)
            clicks = np.zeros(n)
            impressions = np.zeros(n)
            for item, type_, count, value_sum in totals:
                row = self.catalogue.row(item)
                if row is None:
                    continue
                if type_ == "rating":
                    popularity[row] += weights.rating * min(value_sum / weights.max_rating, count)
                else:
                    popularity[row] += getattr(weights, type_, 0.0) * count
                if type_ in self.config.exploration.click_types:
                    clicks[row] += count
            for item, count in shown.items():
                row = self.catalogue.row(item)
                if row is not None:
                    impressions[row] = count
            all_rows = np.arange(n)
            self.catalogue.popularity.set(all_rows, popularity)
            self.catalogue.clicks.set(all_rows, clicks)
            self.catalogue.impressions.set(all_rows, impressions)
        self.refreshed_at = time.monotonic()

"""Per-item counters behind popularity and exploration: updated as events arrive, recounted from the store.

Local increments make a new event count at once in this worker. Every `stats_refresh_seconds` the
events and impressions stored since the last recount (by id) are counted and added, which brings in
what other workers saw at a cost that does not grow with the store. A full recount runs every
`full_recount_seconds`, and at once when local increments cannot be trusted (a batch with
duplicates, a deleted user): it also catches rows a concurrent transaction committed under an id
below one already counted. A deleted item's counts are zeroed (the store deleted its rows too).
Recounts run on their own thread, apart from the change-log poll.
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
        self._refreshing = threading.Lock()  # one refresh at a time (the background thread's and an explicit one)
        self.refreshed_at = 0.0
        self.recounted_at = 0.0  # the last full recount
        self._upto = (0, 0)  # (event id, impression id) the stored counts include
        self._stored: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # popularity, clicks, impressions by row

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

    def refresh(self, *, full: bool = False) -> None:
        """Bring popularity, clicks and impressions in line with the store (see the module doc).

        Refreshes run one at a time: two at once would both add the rows stored since the last
        one, and one that found the recount already taken by the other would return before it.
        """
        with self._refreshing:
            self._refresh(full)

    def _refresh(self, full: bool) -> None:
        full = (
            full
            or self.dirty.is_set()
            or self._stored is None
            or time.monotonic() - self.recounted_at > self.config.full_recount_seconds
        )
        self.dirty.clear()
        if self.config.log_impressions:
            self.impressions.flush()
        upto = self.store.last_ids()
        after = (0, 0) if full else self._upto
        totals = self.store.event_totals(after[0], upto[0])  # (item, type, count, sum of values)
        shown = self.store.impression_counts(after[1], upto[1])
        n = self.catalogue.n_rows
        counted = self._counts(totals, shown, n)
        if not full and self._stored is not None:
            counted = tuple(new + _fit(old, n) for new, old in zip(counted, self._stored, strict=True))
        popularity, clicks, impressions = counted
        self._stored, self._upto = (popularity, clicks, impressions), upto
        with self.catalogue.lock:
            all_rows = np.arange(n)
            self.catalogue.popularity.set(all_rows, popularity)
            self.catalogue.clicks.set(all_rows, clicks)
            self.catalogue.impressions.set(all_rows, impressions)
        self.refreshed_at = time.monotonic()
        if full:
            self.recounted_at = self.refreshed_at

    def forget_rows(self, rows: np.ndarray) -> None:
        """Zero deleted items' counts: the store dropped their events and impressions with them."""
        rows = np.asarray(rows, np.int64)
        if self._stored is not None:
            for values in self._stored:
                values[rows[rows < len(values)]] = 0.0
        n = self.catalogue.n_rows
        rows = rows[rows < n]
        zeros = np.zeros(len(rows))
        with self.catalogue.lock:
            self.catalogue.popularity.set(rows, zeros)
            self.catalogue.clicks.set(rows, zeros)
            self.catalogue.impressions.set(rows, zeros)

    def _counts(
        self, totals: list[tuple[str, str, int, float]], shown: dict[str, int], n: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(popularity, clicks, impressions) per catalogue row, each (n,) float64, of store aggregates.

        Ids are mapped to rows and weighed outside the catalogue lock: readers wait only for the swap.
        """
        weights = self.config.weights
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
        return popularity, clicks, impressions


def _fit(values: np.ndarray, n: int) -> np.ndarray:
    """`values` cut or zero-padded to length n (rows added since they were counted have none yet)."""
    if len(values) >= n:
        return values[:n]
    return np.concatenate([values, np.zeros(n - len(values))])


def _row(catalogue: Catalogue, item: str) -> int:
    row = catalogue.row(item)
    return -1 if row is None else row

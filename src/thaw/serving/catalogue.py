"""The live catalogue: item ids, rows, titles and per-item counters, growing while it is read.

Rows are append-only: an item keeps its row until deleted, a re-added id gets a new row. Vector
indexes (content, model) are keyed by these rows. Writers hold `lock`; readers take no lock.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np


class GrowingArray:
    """A 1-d float64 array that grows by doubling; readers keep the old buffer while it grows."""

    def __init__(self, capacity: int = 1024) -> None:
        self._data = np.zeros(max(capacity, 1), np.float64)

    def ensure(self, n: int) -> None:
        """Make room for rows 0..n-1."""
        if n > len(self._data):
            grown = np.zeros(max(n, 2 * len(self._data)), np.float64)
            grown[: len(self._data)] = self._data
            self._data = grown

    def view(self, n: int) -> np.ndarray:
        """The first n values (a view: do not write through it outside the owner's lock)."""
        return self._data[:n]

    def add(self, rows: np.ndarray, values: np.ndarray | float) -> None:
        """In-place += at rows (duplicates accumulate)."""
        np.add.at(self._data, np.asarray(rows, np.int64), values)

    def set(self, rows: np.ndarray, values: np.ndarray | float) -> None:
        self._data[np.asarray(rows, np.int64)] = values


def fingerprint(title: str, text: str | None, attributes: dict[str, Any]) -> str:
    """A digest of an item's content: equal digests need no re-encoding."""
    document = json.dumps([title, text, attributes], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha1(document.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ItemView:
    """What the catalogue knows about one item."""

    id: str
    row: int
    title: str


class Catalogue:
    """Item id <-> row, titles, liveness, popularity, impressions and clicks."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._ids: list[str] = []
        self._titles: list[str] = []
        self._fingerprints: list[str] = []
        self._row: dict[str, int] = {}
        self._alive = np.zeros(1024, bool)
        self.popularity = GrowingArray()  # weighted interaction count per row
        self.impressions = GrowingArray()
        self.clicks = GrowingArray()

    # ------------------------------------------------------------------ reads
    @property
    def n_rows(self) -> int:
        """One past the highest row ever assigned."""
        return len(self._ids)

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._row

    def row(self, item_id: str) -> int | None:
        return self._row.get(item_id)

    def rows(self, item_ids: list[str]) -> np.ndarray:
        """Rows of the ids that are live (unknown ids dropped), in order: (m,) int64."""
        row = self._row
        return np.array([row[i] for i in item_ids if i in row], np.int64)

    def rows_of(self, item_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the live ids among `item_ids`, in order, and which ids were live: (m,) int64, (n,) bool."""
        row = self._row
        found = [row.get(i, -1) for i in item_ids]
        rows = np.fromiter(found, np.int64, len(found))
        live = rows >= 0
        return rows[live], live

    def id_of(self, row: int) -> str:
        return self._ids[row]

    def title_of(self, row: int) -> str:
        return self._titles[row]

    def fingerprint_of(self, item_id: str) -> str | None:
        """The content digest the live item was indexed with (None if not live)."""
        row = self._row.get(item_id)
        return None if row is None else self._fingerprints[row]

    def alive(self) -> np.ndarray:
        """(n_rows,) bool: rows of items not deleted."""
        return self._alive[: self.n_rows]

    def live_items(self) -> list[ItemView]:
        return [ItemView(i, r, self._titles[r]) for i, r in self._row.items()]

    # ------------------------------------------------------------------ writes (hold `lock`)
    def assign(self, item_ids: list[str], titles: list[str], fingerprints: list[str] | None = None) -> np.ndarray:
        """Rows for these ids: existing rows for known ids (titles refreshed), new rows otherwise."""
        with self.lock:
            out = np.empty(len(item_ids), np.int64)
            prints = fingerprints if fingerprints is not None else [""] * len(item_ids)
            for n, (item_id, title, digest) in enumerate(zip(item_ids, titles, prints, strict=True)):
                row = self._row.get(item_id)
                if row is None:
                    row = len(self._ids)
                    self._ids.append(item_id)
                    self._titles.append(title)
                    self._fingerprints.append(digest)
                    self._row[item_id] = row
                else:
                    self._titles[row] = title
                    self._fingerprints[row] = digest
                out[n] = row
            n_rows = len(self._ids)
            if n_rows > len(self._alive):
                grown = np.zeros(max(n_rows, 2 * len(self._alive)), bool)
                grown[: len(self._alive)] = self._alive
                self._alive = grown
            for counter in (self.popularity, self.impressions, self.clicks):
                counter.ensure(n_rows)
            return out

    def activate(self, rows: np.ndarray) -> None:
        """Mark rows live (after their vectors are in every index)."""
        with self.lock:
            self._alive[np.asarray(rows, np.int64)] = True

    def remove(self, item_id: str) -> int | None:
        """Forget an id; returns its row (counters are zeroed so a re-added id starts fresh)."""
        with self.lock:
            row = self._row.pop(item_id, None)
            if row is not None:
                self._alive[row] = False
                for counter in (self.popularity, self.impressions, self.clicks):
                    counter.set(np.array([row]), 0.0)
            return row

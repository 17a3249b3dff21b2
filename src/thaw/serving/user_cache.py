"""Stored users' model vectors, kept between requests and computed ahead at model load.

A two-tower model's user vector depends only on the model, the user's attributes and text, and
their history's catalogue rows and strengths: the user tower need not run again until one of those
changes. A vector is kept under exactly those inputs plus the user's history key (internal id,
events, last event id), so a new event, an attribute or text change, a deleted history item or a
re-created user is a different key and is computed afresh on the very next request. Each model has
its own cache (a new model starts empty); an item whose content changed in place is re-encoded at
its old row, so it clears every kept vector.

At model load a background thread computes the vectors of up to `warm_users` stored users in
batches, so the first request of a known user is as quick as the next one.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any, Generic, TypeVar

import numpy as np

from thaw.serving.ranking import Profile

Key = tuple[Any, ...]
T = TypeVar("T")


def key_of(profile: Profile) -> Key | None:
    """The inputs a stored user's vector depends on; None for someone not stored (never kept)."""
    if profile.user is None or profile.version is None:
        return None
    attributes = json.dumps(profile.attributes, sort_keys=True, default=str)
    return (profile.version, profile.rows.tobytes(), profile.strengths.tobytes(), attributes, profile.text)


class KeptPerUser(Generic[T]):
    """Least-recently-used values of up to `capacity` users, one per user, each kept under the key
    it was made from: a lookup with any other key is a miss."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[Key, T]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, user: str, key: Key) -> T | None:
        """The kept value of `user` if it was made from exactly `key`."""
        with self._lock:
            entry = self._entries.get(user)
            if entry is None or entry[0] != key:
                self.misses += 1
                return None
            self._entries.move_to_end(user)
            self.hits += 1
            return entry[1]

    def put(self, user: str, key: Key, value: T, *, if_absent: bool = False) -> None:
        """Keep `value` made from `key`; `if_absent` leaves an existing entry alone."""
        if self.capacity == 0:
            return
        with self._lock:
            if if_absent and user in self._entries:
                return
            self._entries[user] = (key, value)
            self._entries.move_to_end(user)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def forget(self, user: str) -> None:
        with self._lock:
            self._entries.pop(user, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class UserVectorCache(KeptPerUser[np.ndarray]):
    """Stored users' model vectors (read-only once kept)."""

    def put(self, user: str, key: Key, value: np.ndarray, *, if_absent: bool = False) -> None:
        value.setflags(write=False)
        super().put(user, key, value, if_absent=if_absent)

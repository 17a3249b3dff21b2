"""Who a list is for: stored users' profiles (history read once, then cached), and new people.

A stored user's profile needs their attributes, their recent history and every item they ever
interacted with. The history is read from the store once and cached per user under a version key
(internal id, number of events, last event id) that one indexed query returns with the user row on
every request: a new event, a deleted user or a re-created one changes the key, so the cache never
serves stale history, whichever worker wrote the change.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from thaw.data.dataset import EventArrays
from thaw.data.records import EVENT_TYPES
from thaw.data.store import Store
from thaw.serving.catalogue import Catalogue
from thaw.serving.config import ServeConfig
from thaw.serving.ranking import Profile
from thaw.serving.user_cache import KeptPerUser

_TYPE_INDEX = {name: n for n, name in enumerate(EVENT_TYPES)}
DEFAULT_LOWEST_RATING = 1.0  # new people's ratings run at least from 1 to weights.max_rating (5)


class NotFoundError(LookupError):
    """An id the store or the catalogue does not know."""

    def __init__(self, kind: str, ids: list[str]) -> None:
        self.kind = kind
        self.ids = list(ids)
        super().__init__(f"unknown {kind} id(s): {', '.join(repr(i) for i in self.ids[:5])}")


@dataclass(frozen=True)
class History:
    """A user's recent history as item ids, ready to map onto catalogue rows."""

    key: tuple[int, int, int]  # (internal id, events, last event id) when it was read
    items: list[str]  # distinct items of the `history_limit` latest events, by first occurrence
    strengths: np.ndarray  # (h,) float32: each item's strongest event weight
    seen: list[str]  # every item the user ever interacted with, sorted
    text: str | None = None  # the text `text_vector` encodes
    text_vector: np.ndarray | None = None  # (1, d)


def event_weights(types: list[str], values: list[float | None], config: ServeConfig) -> np.ndarray:
    """Strength of each event, as in the training matrix: (n,) float32."""
    n = len(types)
    arrays = EventArrays(
        np.zeros(n, np.int32),
        np.zeros(n, np.int32),
        np.fromiter((_TYPE_INDEX[t] for t in types), np.int8, n),
        np.fromiter((np.nan if v is None else v for v in values), np.float32, n),
        np.zeros(n, np.int64),
    )
    return config.weights.of(arrays)


class People:
    """Profiles for stored users (cached histories) and for people not stored."""

    def __init__(
        self,
        store: Store,
        catalogue: Catalogue,
        config: ServeConfig,
        encode_texts: Callable[[list[str]], np.ndarray],
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.config = config
        self.encode_texts = encode_texts
        self.cache: KeptPerUser[History] = KeptPerUser(config.history_cache_users)
        self.rating_scale: tuple[float, float] = (DEFAULT_LOWEST_RATING, config.weights.max_rating)

    def profile_of(self, user_id: str) -> Profile:
        """A stored user's attributes, text and recent history as catalogue rows and strengths."""
        found = self.store.user_version(user_id)
        if found is None:
            self.cache.forget(user_id)
            raise NotFoundError("user", [user_id])
        user, key = found
        history = self.cache.get(user_id, key)
        if history is None:
            # The events are read after the key: they are at least as new as it.
            history = self._read(key)
        if user.text and (history.text != user.text or history.text_vector is None):
            history = History(key, history.items, history.strengths, history.seen, user.text, self.encode_texts([user.text]))
        self.cache.put(user_id, history.key, history)
        rows, live = self.catalogue.rows_of(history.items)
        seen, _ = self.catalogue.rows_of(history.seen)
        return Profile(
            user_id,
            user.attributes,
            user.text,
            rows,
            history.strengths[live],
            seen,
            history.text_vector if user.text else None,
            key,
        )

    def _read(self, key: tuple[int, int, int]) -> History:
        events = self.store.user_events(key[0])  # (item, type, value) in time order
        recent = deque(events, maxlen=self.config.history_limit)
        seen = sorted({item for item, _, _ in events})
        items, strengths = strongest(list(recent), self.config)
        return History(key, items, strengths, seen)

    def refresh_rating_scale(self) -> tuple[float, float]:
        """Re-read the range new people's ratings must fall in: (lowest, highest).

        1 to `weights.max_rating` (the scale the event weights assume: 1-5 by default), widened to
        the lowest and highest value of the store's rating events. A store whose few ratings are
        all 4 still lets a new person give 1 star.
        """
        low, high = DEFAULT_LOWEST_RATING, self.config.weights.max_rating
        found = self.store.rating_range()
        if found is not None:
            low, high = min(low, found[0]), max(high, found[1])
        self.rating_scale = (low, high)
        return self.rating_scale

    def profile_new(
        self,
        attributes: dict[str, Any],
        liked: list[str],
        text: str | None,
        rated: list[tuple[str, float]] | None = None,
    ) -> Profile:
        """Someone not stored: attributes, a few liked or rated items, text.

        A like is a `purchase` event and a rating a `rating` event with its value, weighed exactly
        as a stored user's events are (`strongest`): a rating of v counts v / max_rating of a
        rating's weight, so a low rating is a weak signal, never a like's.
        """
        rated = list(rated or [])
        missing = [i for i in itertools.chain(liked, (item for item, _ in rated)) if i not in self.catalogue]
        if missing:
            raise NotFoundError("item", missing)
        events: list[tuple[str, str, float | None]] = [(item, "purchase", None) for item in liked]
        events += [(item, "rating", float(value)) for item, value in rated]
        items, strengths = strongest(events, self.config)
        rows = self.catalogue.rows(items)
        text_vector = self.encode_texts([text]) if text else None
        return Profile(None, attributes, text, rows, strengths, rows, text_vector)


def strongest(events: list[tuple[str, str, float | None]], config: ServeConfig) -> tuple[list[str], np.ndarray]:
    """Distinct items of (item, type, value) events and each one's strongest event weight: (h,) float32.

    Each item keeps its strongest event, at the place of its first one (as in training).
    """
    if not events:
        return [], np.empty(0, np.float32)
    weights = event_weights([t for _, t, _ in events], [v for _, _, v in events], config)
    best: dict[str, float] = {}
    for (item, _, _), weight in zip(events, weights.tolist(), strict=True):
        if weight > best.get(item, -1.0):
            best[item] = weight
    return list(best), np.fromiter(best.values(), np.float32, len(best))

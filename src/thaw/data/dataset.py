"""Dataset snapshot: the store turned into plain arrays (id maps, event arrays, content tables).

This is the boundary every model and the evaluation use. No SQL here: the snapshot is built from
the store's iterators.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from thaw.data.records import EVENT_TYPES, EventRecord, ItemRecord, UserRecord

if TYPE_CHECKING:
    from thaw.data.store import Store

ProgressHook = Callable[[str, int], None]
"""Called as hook(stage, rows_so_far) while a snapshot is read."""


@dataclass(frozen=True)
class ItemContent:
    """What is known about items without any interaction: titles, texts, attributes."""

    titles: list[str]
    texts: list[str | None]
    attributes: list[dict[str, Any]]
    text_vectors: np.ndarray | None = None  # (n_items, d) pretrained encodings, when computed

    def __len__(self) -> int:
        return len(self.titles)

    def documents(self) -> list[str]:
        """One text per item for a text encoder: the title, then the text when there is one."""
        return [
            f"{title}. {text}" if text else title
            for title, text in zip(self.titles, self.texts, strict=True)
        ]


@dataclass(frozen=True)
class UserContent:
    """What is known about users without any interaction: attributes and free text."""

    attributes: list[dict[str, Any]]
    texts: list[str | None]
    text_vectors: np.ndarray | None = None  # (n_users, d), when computed

    def __len__(self) -> int:
        return len(self.attributes)


@dataclass(frozen=True)
class EventArrays:
    """Events as parallel arrays, sorted by time (ties in insertion order)."""

    user: np.ndarray  # (n,) int32 user index
    item: np.ndarray  # (n,) int32 item index
    type: np.ndarray  # (n,) int8 index into EVENT_TYPES
    value: np.ndarray  # (n,) float32, NaN where absent
    time: np.ndarray  # (n,) int64 unix seconds

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask: np.ndarray) -> EventArrays:
        """The events where `mask` (boolean or index array) selects."""
        return EventArrays(
            self.user[mask], self.item[mask], self.type[mask], self.value[mask], self.time[mask]
        )

    def of_pairs(self, users: np.ndarray, items: np.ndarray, n_items: int) -> EventArrays:
        """The events on the given (user, item) pairs (parallel index arrays)."""
        wanted = np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64)
        return self.subset(np.isin(self.user.astype(np.int64) * n_items + self.item, wanted))


@dataclass(frozen=True)
class EventWeights:
    """How strongly each kind of event says "this user likes this item".

    Purchase > rating > click > view; a rating's value scales its weight (value / max_rating).
    """

    view: float = 0.25
    click: float = 0.5
    purchase: float = 1.0
    rating: float = 0.8
    review: float = 0.8
    max_rating: float = 5.0

    def __post_init__(self) -> None:
        for name in EVENT_TYPES:
            if getattr(self, name) < 0:
                raise ValueError(f"weight of {name!r} must be >= 0")
        if self.max_rating <= 0:
            raise ValueError("max_rating must be > 0")

    def of(self, events: EventArrays) -> np.ndarray:
        """The weight of every event: (n,) float32."""
        by_type = np.array([getattr(self, name) for name in EVENT_TYPES], dtype=np.float32)
        weights = by_type[events.type]
        rated = (events.type == EVENT_TYPES.index("rating")) & ~np.isnan(events.value)
        weights[rated] *= np.clip(events.value[rated] / self.max_rating, 0.0, 1.0)
        return weights


@dataclass(frozen=True)
class Snapshot:
    """Users, items and events of a store as arrays; index i of every table is the same entity."""

    user_ids: list[str]
    item_ids: list[str]
    users: UserContent
    items: ItemContent
    item_derived: list[dict[str, Any]]  # interaction-derived attributes: never content
    events: EventArrays
    user_index: dict[str, int] = field(init=False, repr=False)
    item_index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_index", {u: i for i, u in enumerate(self.user_ids)})
        object.__setattr__(self, "item_index", {t: i for i, t in enumerate(self.item_ids)})

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def matrix(
        self, events: EventArrays | None = None, weights: EventWeights | None = None
    ) -> sp.csr_matrix:
        """A (n_users, n_items) float32 CSR matrix of `events` (default: all).

        Binary without `weights`; with them, each (user, item) keeps its strongest event.
        """
        events = self.events if events is None else events
        return interaction_matrix(events, self.n_users, self.n_items, weights)


def interaction_matrix(
    events: EventArrays, n_users: int, n_items: int, weights: EventWeights | None = None
) -> sp.csr_matrix:
    """Events as a (n_users, n_items) CSR matrix: 1 per pair, or the pair's strongest weight."""
    values = np.ones(len(events), np.float32) if weights is None else weights.of(events)
    coo = sp.coo_matrix(
        (values, (events.user.astype(np.int64), events.item.astype(np.int64))),
        shape=(n_users, n_items),
    )
    # Max over duplicates: sort by value so the last write per pair is the strongest.
    order = np.argsort(values, kind="stable")
    dense_keys = coo.row[order] * n_items + coo.col[order]
    keys, last = np.unique(dense_keys[::-1], return_index=True)
    picked = order[::-1][last]
    matrix = sp.csr_matrix(
        (values[picked], (keys // n_items, keys % n_items)), shape=(n_users, n_items), dtype=np.float32
    )
    matrix.sort_indices()
    return matrix


def build_snapshot(
    store: Store, *, include_generated: bool = False, progress: ProgressHook | None = None
) -> Snapshot:
    """Read every user, item and (real) event of `store` into a Snapshot."""
    return snapshot_from_records(
        store.iter_users(),
        store.iter_items(),
        store.iter_events(include_generated=include_generated),
        progress=progress,
    )


def snapshot_from_records(
    users: Iterable[UserRecord],
    items: Iterable[ItemRecord],
    events: Iterable[EventRecord],
    *,
    progress: ProgressHook | None = None,
) -> Snapshot:
    """Build a Snapshot from records (the store's iterators, or lists in tests)."""
    user_list = _counted(users, "users", progress)
    item_list = _counted(items, "items", progress)
    user_index = {u.id: i for i, u in enumerate(user_list)}
    item_index = {t.id: i for i, t in enumerate(item_list)}
    type_index = {name: i for i, name in enumerate(EVENT_TYPES)}

    cols: dict[str, list[Any]] = {"user": [], "item": [], "type": [], "value": [], "time": []}
    for n, e in enumerate(events, 1):
        cols["user"].append(user_index[e.user])
        cols["item"].append(item_index[e.item])
        cols["type"].append(type_index[e.type])
        cols["value"].append(np.nan if e.value is None else e.value)
        cols["time"].append(_unix(e.timestamp))
        if progress and n % 50_000 == 0:
            progress("events", n)
    arrays = EventArrays(
        np.asarray(cols["user"], np.int32),
        np.asarray(cols["item"], np.int32),
        np.asarray(cols["type"], np.int8),
        np.asarray(cols["value"], np.float32),
        np.asarray(cols["time"], np.int64),
    )
    order = np.argsort(arrays.time, kind="stable")
    return Snapshot(
        user_ids=[u.id for u in user_list],
        item_ids=[t.id for t in item_list],
        users=UserContent([u.attributes for u in user_list], [u.text for u in user_list]),
        items=ItemContent(
            [t.title for t in item_list], [t.text for t in item_list], [t.attributes for t in item_list]
        ),
        item_derived=[t.derived for t in item_list],
        events=arrays.subset(order),
    )


def _counted(rows: Iterable[Any], stage: str, progress: ProgressHook | None) -> list[Any]:
    out = list(rows)
    if progress:
        progress(stage, len(out))
    return out


def _unix(moment: Any) -> int:
    # Naive datetimes from the store are UTC.
    from datetime import timezone

    return int(moment.replace(tzinfo=timezone.utc).timestamp())

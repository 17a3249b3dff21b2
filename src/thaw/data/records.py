"""Plain records that cross the store boundary (no SQLAlchemy here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

EVENT_TYPES: tuple[str, ...] = ("view", "click", "purchase", "rating", "review")
"""Behaviour the store accepts. Weights for each live with the models, not here."""

MAX_ID_LENGTH = 255


def utc_naive(moment: datetime) -> datetime:
    """A timestamp as naive UTC, the single form the store keeps on every backend."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def now_utc() -> datetime:
    """The current time as naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class UserRecord:
    """A person: external id, categorical/numeric attributes and optional free text (bio, reviews)."""

    id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class ItemRecord:
    """A catalogue entry: title and text are content; `derived` holds interaction-derived attributes.

    `derived` attributes (for example user-assigned tags, citations) exist only because users
    interacted with the item, so they are never content for a cold item.
    """

    id: str
    title: str = ""
    text: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    derived: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class EventRecord:
    """One piece of behaviour: `user` did `type` on `item`, with an optional value and text."""

    user: str
    item: str
    type: str
    timestamp: datetime
    value: float | None = None
    text: str | None = None
    idempotency_key: str | None = None
    generated: bool = False


@dataclass(frozen=True)
class WriteResult:
    """What a batch write did: rows inserted, rows updated, rows left unchanged (duplicates)."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
        )


@dataclass(frozen=True)
class StoreStats:
    """Counts of users, items and events (by type; generated events counted apart)."""

    users: int
    items: int
    events: int
    events_by_type: dict[str, int]
    generated_events: int = 0


@dataclass(frozen=True)
class ImpressionRecord:
    """An item shown in a recommendation list: to `user` (None if not stored), at `position`."""

    item: str
    position: int
    source: str
    request_id: str
    timestamp: datetime
    user: str | None = None

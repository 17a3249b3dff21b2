"""Generated feedback in the store: synthetic interactions for new items, kept apart from real data.

A generated interaction is an event with `generated = True`, type `view` and the pair's
calibrated confidence as its value (thaw.training.feedback). Real-data readers never see such
events (`iter_events`, `build_snapshot` and the statistics leave them out unless asked), so they
never count as real data; `drop_generated` removes them at any time, for some items or all. The
pairs of a user are that user's exposure candidates among the new items.

Writes go through the Store's public transaction API; the few statements the Store has no method
for (delete the generated events of some items, list items with real events) use its engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from thaw.data.records import EventRecord, now_utc
from thaw.data.schema import Event, Item, User
from thaw.data.store import Store

EVENT_TYPE = "view"  # the weakest event type: a generated pair is a guess, never a purchase
_CHUNK = 500


@dataclass(frozen=True)
class GeneratedPair:
    """One generated interaction: `user` would plausibly take up `item`, with `confidence`."""

    user: str
    item: str
    confidence: float
    rank: int = 0  # the user's rank among the item's generated users (1 = best), 0 if unknown

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence of ({self.user}, {self.item}) must be in [0, 1], got {self.confidence}")


def write_generated(
    store: Store, pairs: Iterable[GeneratedPair], *, at: datetime | None = None, replace: bool = True
) -> int:
    """Store `pairs` as generated events in one transaction; returns how many were written.

    With `replace`, the generated events of the items named in `pairs` are dropped first, so
    writing a new generation for an item replaces the old one instead of adding to it.
    """
    pairs = list(pairs)
    if not pairs:
        return 0
    moment = at if at is not None else now_utc()
    events = [
        EventRecord(p.user, p.item, EVENT_TYPE, moment, value=float(p.confidence), generated=True)
        for p in pairs
    ]
    with store.transaction() as tx:
        if replace:
            _delete_generated(tx.conn, sorted({p.item for p in pairs}))
        return tx.add_events(events).inserted


def read_generated(store: Store, *, user: str | None = None, item: str | None = None) -> list[GeneratedPair]:
    """The generated pairs in the store (of one user or one item), most confident first."""
    out = [
        GeneratedPair(e.user, e.item, float(e.value if e.value is not None else 0.0))
        for e in store.iter_events(user=user, item=item, include_generated=True)
        if e.generated
    ]
    return sorted(out, key=lambda p: (-p.confidence, p.item, p.user))


def exposure_candidates(store: Store, user: str, limit: int = 20) -> list[tuple[str, float]]:
    """A user's new items to show, from their generated pairs: [(item, confidence)], best first."""
    return [(p.item, p.confidence) for p in read_generated(store, user=user)[:limit]]


def generated_by_user(store: Store, *, per_user: int | None = None) -> dict[str, list[tuple[str, float]]]:
    """Every user's generated pairs in one query: {user: [(item, confidence)]}, most confident first.

    Serving loads these as exposure candidates (thaw.serving.generated); `per_user` keeps only each
    user's most confident ones. A store without generated events answers {} at the cost of one scan.
    """
    query = (
        select(User.external_id, Item.external_id, Event.value)
        .select_from(Event)
        .join(User, User.id == Event.user_id)
        .join(Item, Item.id == Event.item_id)
        .where(Event.generated.is_(True))
    )
    out: dict[str, list[tuple[str, float]]] = {}
    with store.engine.connect() as conn:
        for user, item, value in conn.execute(query):
            out.setdefault(user, []).append((item, float(value if value is not None else 0.0)))
    for user, pairs in out.items():
        pairs.sort(key=lambda pair: (-pair[1], pair[0]))
        # One item may have been generated twice for a user (written with replace=False): keep the best.
        best: dict[str, float] = {}
        for item, confidence in pairs:
            best.setdefault(item, confidence)
        unique = list(best.items())
        out[user] = unique[:per_user] if per_user is not None else unique
    return out


def generated_version(store: Store) -> tuple[int, int, str]:
    """(count, highest id, latest timestamp) of the generated events: changes whenever they do.

    Deleting some changes the count; a new generation is written with a new timestamp (ids alone
    would not do: SQLite may reuse the ids of rows just deleted). One aggregate query, so a server
    can skip re-reading unchanged pairs (thaw.serving.generated).
    """
    query = select(func.count(), func.coalesce(func.max(Event.id), 0), func.max(Event.timestamp)).where(
        Event.generated.is_(True)
    )
    with store.engine.connect() as conn:
        count, highest, latest = conn.execute(query).one()
    return int(count), int(highest), str(latest)


def drop_generated(store: Store, items: Sequence[str] | None = None) -> int:
    """Delete generated events (of `items`, or all); real events are never touched."""
    if items is None:
        return store.delete_generated_events()
    with store.transaction() as tx:
        return _delete_generated(tx.conn, list(items))


def pairs_from_feedback(
    feedback: Any, user_ids: Sequence[str], item_ids: Sequence[str], *, skip_items: set[str] = frozenset()
) -> list[GeneratedPair]:
    """Pairs by external id from a model's generated feedback (rows, as `ThawRecommender.feedback_`).

    Items in `skip_items` (for instance those with real events) are left out.
    """
    out = []
    for u, i, c, r in zip(feedback.users, feedback.items, feedback.confidence, feedback.rank, strict=True):
        if item_ids[i] not in skip_items:
            out.append(GeneratedPair(user_ids[u], item_ids[i], float(c), int(r)))
    return out


def items_with_real_events(store: Store) -> set[str]:
    """External ids of the items that have at least one real (not generated) event."""
    query = (
        select(Item.external_id)
        .where(Item.id.in_(select(Event.item_id).where(Event.generated.is_(False)).distinct()))
    )
    with store.engine.connect() as conn:
        return set(conn.execute(query).scalars())


def _delete_generated(conn: Connection, items: Sequence[str]) -> int:
    deleted = 0
    for start in range(0, len(items), _CHUNK):
        chunk = list(items[start : start + _CHUNK])
        ids = select(Item.id).where(Item.external_id.in_(chunk))
        statement = delete(Event).where(Event.generated.is_(True), Event.item_id.in_(ids))
        deleted += conn.execute(statement).rowcount
    return deleted


def store_model_feedback(store: Store, model: Any) -> int:
    """Write a fitted ThawRecommender's generated feedback for the store's new items; how many.

    Only items without any real event get generated events (the holdout items a fit uses for
    validation are real items, never fed); a new generation replaces the old one.
    """
    feedback = getattr(model, "feedback_", None)
    if feedback is None or len(feedback) == 0:
        return 0
    pairs = pairs_from_feedback(feedback, model.user_ids_, model.item_ids_, skip_items=items_with_real_events(store))
    return write_generated(store, pairs)

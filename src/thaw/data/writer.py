"""Writes inside one open transaction: upserts of users and items, appends of events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from thaw.data.errors import UnknownReferenceError
from thaw.data.records import EVENT_TYPES, EventRecord, ItemRecord, UserRecord, WriteResult, now_utc, utc_naive
from thaw.data.schema import Event, Item, User
from thaw.data.sql import chunks, insert_ignore, normal_json, record_changes


class StoreWriter:
    """Writes inside one open transaction (see `Store.transaction`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def upsert_users(self, users: Iterable[UserRecord]) -> WriteResult:
        """Insert new users, update changed ones, leave identical ones alone."""
        rows = {
            u.id: {
                "external_id": u.id,
                "attributes": normal_json(u.attributes),
                "text": u.text,
                "created_at": utc_naive(u.created_at) if u.created_at else None,
            }
            for u in users
        }
        return self._upsert(User, rows, ("attributes", "text"))

    def upsert_items(self, items: Iterable[ItemRecord]) -> WriteResult:
        """Insert new items, update changed ones, leave identical ones alone."""
        rows = {
            i.id: {
                "external_id": i.id,
                "title": i.title or "",
                "text": i.text,
                "attributes": normal_json(i.attributes),
                "derived": normal_json(i.derived),
                "created_at": utc_naive(i.created_at) if i.created_at else None,
            }
            for i in items
        }
        return self._upsert(Item, rows, ("title", "text", "attributes", "derived"), record="item")

    def add_events(self, events: Iterable[EventRecord]) -> WriteResult:
        """Append events, skipping those whose idempotency key is stored or repeated in the batch."""
        events = list(events)
        if not events:
            return WriteResult()
        for e in events:
            if e.type not in EVENT_TYPES:
                raise ValueError(f"event type {e.type!r} is not one of {', '.join(EVENT_TYPES)}")
        user_ids = self._internal_ids(User, {e.user for e in events})
        item_ids = self._internal_ids(Item, {e.item for e in events})
        missing_users = sorted({e.user for e in events} - user_ids.keys())
        if missing_users:
            raise UnknownReferenceError("user", missing_users)
        missing_items = sorted({e.item for e in events} - item_ids.keys())
        if missing_items:
            raise UnknownReferenceError("item", missing_items)

        keys = [e.idempotency_key for e in events if e.idempotency_key is not None]
        seen: set[str] = set()
        for chunk in chunks(keys):
            seen.update(
                self.conn.execute(
                    select(Event.idempotency_key).where(Event.idempotency_key.in_(chunk))
                ).scalars()
            )
        rows = []
        unchanged = 0
        for e in events:
            if e.idempotency_key is not None:
                if e.idempotency_key in seen:
                    unchanged += 1
                    continue
                seen.add(e.idempotency_key)
            rows.append(
                {
                    "user_id": user_ids[e.user],
                    "item_id": item_ids[e.item],
                    "type": e.type,
                    "value": e.value,
                    "text": e.text,
                    "timestamp": utc_naive(e.timestamp),
                    "idempotency_key": e.idempotency_key,
                    "generated": e.generated,
                }
            )
        # Insert-or-ignore on the key: a concurrent writer with the same key loses the race quietly.
        statement = insert_ignore(self.conn, Event, ["idempotency_key"])
        for chunk in chunks(rows, 5000):
            self.conn.execute(statement, list(chunk))
        return WriteResult(inserted=len(rows), unchanged=unchanged)

    def _internal_ids(self, table: type[User] | type[Item], external: set[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in chunks(sorted(external)):
            query = select(table.external_id, table.id).where(table.external_id.in_(chunk))
            found.update({ext: pk for ext, pk in self.conn.execute(query)})
        return found

    def _upsert(
        self,
        table: type[User] | type[Item],
        rows: dict[str, dict[str, Any]],
        compare: tuple[str, ...],
        record: str | None = None,
    ) -> WriteResult:
        if not rows:
            return WriteResult()
        existing: dict[str, Any] = {}
        columns = [table.id, table.external_id, *(getattr(table, c) for c in compare)]
        for chunk in chunks(list(rows)):
            for row in self.conn.execute(select(*columns).where(table.external_id.in_(chunk))):
                existing[row.external_id] = row
        now = now_utc()
        new, changed = [], []
        for ext, row in rows.items():
            old = existing.get(ext)
            if old is None:
                new.append({**row, "created_at": row["created_at"] or now})
            elif any(getattr(old, c) != row[c] for c in compare):
                changed.append({"pk": old.id, **{c: row[c] for c in compare}})
        statement = insert_ignore(self.conn, table, ["external_id"])
        for chunk in chunks(new, 5000):
            self.conn.execute(statement, list(chunk))
        if changed:
            self.conn.execute(
                update(table)
                .where(table.id == bindparam("pk"))
                .values(**{c: bindparam(c) for c in compare}),
                changed,
            )
        if record is not None:
            keys = [row["external_id"] for row in new]
            keys += [ext for ext, old in existing.items() if any(getattr(old, c) != rows[ext][c] for c in compare)]
            record_changes(self.conn, record, keys)
        return WriteResult(len(new), len(changed), len(rows) - len(new) - len(changed))

"""The store's serving queries: impressions, per-item event totals, the change log, user histories.

A mixin of `thaw.data.store.Store` (it needs only `self.engine`), kept apart because these run on
the serving hot path and are shaped by it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection, Engine

from thaw.data.records import ImpressionRecord, UserRecord, utc_naive
from thaw.data.schema import Change, Event, Impression, Item, User
from thaw.data.sql import USER_EVENTS, USER_VERSION, chunks, record_changes, user_record


class ServingQueries:
    """Reads and small writes that the HTTP server makes on every request or poll."""

    engine: Engine

    def add_impressions(self, impressions: Iterable[ImpressionRecord]) -> int:
        """Log shown items in one transaction; rows whose item or user is gone are skipped.

        A server logs about ten rows per list it serves, from a background thread that shares the
        interpreter lock with the requests; through SQLAlchemy's per-row parameter processing a flush of
        300 rows held the lock for about 5 ms, which showed in the serving p99. So the ids are looked up
        and the rows inserted with plain driver statements: one tuple per row, bound by the driver.
        """
        impressions = list(impressions)
        if not impressions:
            return 0
        with self.engine.begin() as conn:
            driver = _DriverSql(conn)
            try:
                item_ids = driver.internal_ids(Item.__tablename__, {i.item for i in impressions})
                user_ids = driver.internal_ids(User.__tablename__, {i.user for i in impressions if i.user is not None})
                stamp = driver.timestamp
                rows = [
                    (i.request_id, None if i.user is None else user_ids[i.user], item_ids[i.item], i.position, i.source, stamp(i.timestamp))
                    for i in impressions
                    if i.item in item_ids and (i.user is None or i.user in user_ids)
                ]
                columns = ("request_id", "user_id", "item_id", "position", "source", "timestamp")
                statement = driver.insert(Impression.__tablename__, columns)
                for chunk in chunks(rows, 5000):
                    driver.cursor.executemany(statement, list(chunk))
            finally:
                driver.cursor.close()
            return len(rows)

    def impression_counts(self, after: int = 0, upto: int | None = None) -> dict[str, int]:
        """How often each item was shown: {item id: impressions} (items never shown are absent).

        Only impressions with `after` < id <= `upto` when given: a recount of what is new since one.
        """
        query = (
            select(Item.external_id, func.count())
            .select_from(Impression)
            .join(Item, Item.id == Impression.item_id)
            .where(Impression.id > after)
            .group_by(Item.external_id)
        )
        if upto is not None:
            query = query.where(Impression.id <= upto)
        with self.engine.connect() as conn:
            return {item: int(n) for item, n in conn.execute(query)}

    def last_ids(self) -> tuple[int, int]:
        """(highest event id, highest impression id), 0 for an empty table: the bounds of a recount."""
        with self.engine.connect() as conn:
            events = conn.execute(select(func.coalesce(func.max(Event.id), 0))).scalar_one()
            impressions = conn.execute(select(func.coalesce(func.max(Impression.id), 0))).scalar_one()
        return int(events), int(impressions)

    def event_totals(self, after: int = 0, upto: int | None = None) -> list[tuple[str, str, int, float]]:
        """Real events per (item, type): (item id, type, count, sum of values; 0 where absent).

        Only events with `after` < id <= `upto` when given: a recount of what is new since one.
        """
        query = (
            select(Item.external_id, Event.type, func.count(), func.coalesce(func.sum(Event.value), 0.0))
            .select_from(Event)
            .join(Item, Item.id == Event.item_id)
            .where(Event.generated.is_(False), Event.id > after)
            .group_by(Item.external_id, Event.type)
        )
        if upto is not None:
            query = query.where(Event.id <= upto)
        with self.engine.connect() as conn:
            return [(item, type_, int(n), float(total)) for item, type_, n, total in conn.execute(query)]

    def rating_range(self) -> tuple[float, float] | None:
        """(lowest, highest) value of the real `rating` events, or None when there are none."""
        query = select(func.min(Event.value), func.max(Event.value)).where(
            Event.type == "rating", Event.value.is_not(None), Event.generated.is_(False)
        )
        with self.engine.connect() as conn:
            low, high = conn.execute(query).one()
        return None if low is None else (float(low), float(high))

    # ------------------------------------------------------------------ serving: change log, histories
    def last_change(self) -> int:
        """The highest change-log id (0 when the log is empty)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(Change.id), 0))).scalar_one())

    def record_change(self, kind: str, key: str) -> int:
        """Append one change-log row outside any other write (a new model version, say); its id."""
        with self.engine.begin() as conn:
            record_changes(conn, kind, [key])
        return self.last_change()

    def count_changes_after(self, change_id: int) -> int:
        """How many change-log rows have an id above `change_id` (a cheap "anything new?" test)."""
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(Change).where(Change.id > change_id)
            return int(conn.execute(query).scalar_one())

    def changes_after(self, change_id: int, *, limit: int = 5000) -> list[tuple[int, str, str]]:
        """Change-log rows with an id above `change_id`, oldest first: (id, kind, key)."""
        query = select(Change.id, Change.kind, Change.key).where(Change.id > change_id).order_by(Change.id).limit(limit)
        with self.engine.connect() as conn:
            return [(int(i), kind, key) for i, kind, key in conn.execute(query)]

    def prune_changes(self, before: datetime) -> int:
        """Drop change-log rows written before `before` (the newest row always stays); returns how many."""
        with self.engine.begin() as conn:
            newest = conn.execute(select(func.max(Change.id))).scalar_one()
            if newest is None:
                return 0
            return conn.execute(delete(Change).where(Change.at < utc_naive(before), Change.id < newest)).rowcount

    def user_version(self, user_id: str) -> tuple[UserRecord, tuple[int, int, int]] | None:
        """A user and a key that changes whenever their events do: (internal id, events, last event id).

        One indexed query (built once: this runs on every recommendation request); None for an
        unknown user.
        """
        with self.engine.connect() as conn:
            row = conn.execute(USER_VERSION, {"user_id": user_id}).one_or_none()
        if row is None:
            return None
        return user_record(row), (int(row.id), int(row.n_events), int(row.last_event))

    def user_events(self, user_pk: int) -> list[tuple[str, str, float | None]]:
        """A user's real events in time order as (item id, type, value), by internal id (see user_version)."""
        with self.engine.connect() as conn:
            return [(item, type_, value) for item, type_, value in conn.execute(USER_EVENTS, {"user_pk": user_pk})]


class _DriverSql:
    """The impression log's statements, written for the DBAPI driver itself (its placeholder style)."""

    def __init__(self, conn: Connection) -> None:
        self.cursor = conn.connection.cursor()  # the driver's own, in the connection's transaction
        style = conn.dialect.paramstyle
        if style not in ("qmark", "format", "pyformat"):
            raise NotImplementedError(f"driver parameter style {style!r}")
        self.mark = "?" if style == "qmark" else "%s"
        self.quote = conn.dialect.identifier_preparer.quote
        kind = Impression.__table__.c.timestamp.type
        self._process = kind.dialect_impl(conn.dialect).bind_processor(conn.dialect)  # SQLite: its text form
        self._stamps: dict[datetime, Any] = {}

    def timestamp(self, value: datetime) -> Any:
        """A timestamp as the column stores it (a request's rows share one: converted once)."""
        stamp = self._stamps.get(value)
        if stamp is None:
            naive = utc_naive(value)
            stamp = self._stamps[value] = naive if self._process is None else self._process(naive)
        return stamp

    def internal_ids(self, table: str, external: set[str]) -> dict[str, int]:
        """{external id: primary key} of the rows of `table` (items or users) that exist."""
        found: dict[str, int] = {}
        q = self.quote
        for chunk in chunks(sorted(external)):
            marks = ", ".join([self.mark] * len(chunk))
            sql = f"SELECT {q('external_id')}, {q('id')} FROM {q(table)} WHERE {q('external_id')} IN ({marks})"
            self.cursor.execute(sql, tuple(chunk))
            found.update({ext: int(pk) for ext, pk in self.cursor.fetchall()})
        return found

    def insert(self, table: str, columns: tuple[str, ...]) -> str:
        q = self.quote
        names = ", ".join(q(c) for c in columns)
        return f"INSERT INTO {q(table)} ({names}) VALUES ({', '.join([self.mark] * len(columns))})"

"""The store: users, items, events and cached embeddings behind any SQLAlchemy URL.

This is the only module that talks SQL. Backends are chosen by URL alone (`sqlite:///file`,
`postgresql+psycopg://…`, `mysql+pymysql://…`); per-backend differences stay in this file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from typing import Any

from sqlalchemy import Connection, bindparam, create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool

from thaw.data.errors import UnknownReferenceError
from thaw.data.records import (
    EVENT_TYPES,
    EventRecord,
    ImpressionRecord,
    ItemRecord,
    StoreStats,
    UserRecord,
    WriteResult,
    now_utc,
    utc_naive,
)
from thaw.data.schema import Change, Embedding, Event, Impression, Item, User

log = logging.getLogger(__name__)

_CHUNK = 500  # ids per IN (...) clause: well under every backend's parameter limit


def text_hash(text: str) -> str:
    """The cache key of a text: SHA-1 of its UTF-8 bytes."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _normal_json(value: dict[str, Any]) -> dict[str, Any]:
    """Attributes as they come back from the database (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, sort_keys=True))


class Store:
    """Transactional, batched access to thaw's tables.

    Every public write runs in one transaction; `transaction()` groups several writes into one.
    """

    def __init__(self, url: str, *, migrate: bool = True, echo: bool = False) -> None:
        self.url = url
        self.engine = _make_engine(url, echo=echo)
        if migrate:
            self.migrate()

    # ------------------------------------------------------------------ lifecycle
    def migrate(self) -> None:
        """Bring the schema up to the newest Alembic revision."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(resources.files("thaw") / "migrations"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def backend(self) -> str:
        """The dialect name: sqlite, postgresql, mysql or mariadb."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[StoreWriter]:
        """Group writes: all of them land, or none does."""
        with self.engine.begin() as conn:
            yield StoreWriter(conn)

    # ------------------------------------------------------------------ writes
    def upsert_users(self, users: Iterable[UserRecord]) -> WriteResult:
        """Insert new users, update changed ones, leave identical ones alone."""
        with self.transaction() as tx:
            return tx.upsert_users(users)

    def upsert_items(self, items: Iterable[ItemRecord]) -> WriteResult:
        """Insert new items, update changed ones, leave identical ones alone."""
        with self.transaction() as tx:
            return tx.upsert_items(items)

    def add_events(self, events: Iterable[EventRecord]) -> WriteResult:
        """Append events; one whose idempotency key is already stored is left unchanged."""
        with self.transaction() as tx:
            return tx.add_events(events)

    def update_item(self, item_id: str, **fields: Any) -> bool:
        """Change some of an item's fields (title, text, attributes, derived); False if unknown."""
        allowed = {"title", "text", "attributes", "derived"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update item field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        with self.engine.begin() as conn:
            result = conn.execute(update(Item).where(Item.external_id == item_id).values(**fields))
            if result.rowcount > 0:
                _record_changes(conn, "item", [item_id])
            return result.rowcount > 0

    def delete_user(self, user_id: str) -> bool:
        """Forget a user: the row, every event (cascade) and the cached vector of their text."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(User.id, User.text).where(User.external_id == user_id)
            ).one_or_none()
            if row is None:
                return False
            conn.execute(delete(Event).where(Event.user_id == row.id))
            conn.execute(delete(Impression).where(Impression.user_id == row.id))
            conn.execute(delete(User).where(User.id == row.id))
            if row.text:
                conn.execute(delete(Embedding).where(Embedding.text_hash == text_hash(row.text)))
            return True

    def delete_item(self, item_id: str) -> bool:
        """Remove an item and its events."""
        with self.engine.begin() as conn:
            row = conn.execute(select(Item.id).where(Item.external_id == item_id)).one_or_none()
            if row is None:
                return False
            conn.execute(delete(Event).where(Event.item_id == row.id))
            conn.execute(delete(Impression).where(Impression.item_id == row.id))
            conn.execute(delete(Item).where(Item.id == row.id))
            _record_changes(conn, "item", [item_id])
            return True

    def delete_generated_events(self) -> int:
        """Drop every generated (synthetic) event; real data is untouched."""
        with self.engine.begin() as conn:
            return conn.execute(delete(Event).where(Event.generated.is_(True))).rowcount

    # ------------------------------------------------------------------ reads
    def stats(self) -> StoreStats:
        """Counts of users, items and real events by type, and of generated events."""
        with self.engine.connect() as conn:
            users = conn.execute(select(func.count()).select_from(User)).scalar_one()
            items = conn.execute(select(func.count()).select_from(Item)).scalar_one()
            rows = conn.execute(
                select(Event.type, Event.generated, func.count()).group_by(Event.type, Event.generated)
            ).all()
        by_type: dict[str, int] = {}
        generated = 0
        for type_, is_generated, count in rows:
            if is_generated:
                generated += count
            else:
                by_type[type_] = by_type.get(type_, 0) + count
        return StoreStats(users, items, sum(by_type.values()), dict(sorted(by_type.items())), generated)

    def get_users(self, ids: Sequence[str]) -> list[UserRecord]:
        """The users with these external ids that exist, in the order asked."""
        found: dict[str, UserRecord] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(ids)):
                for row in conn.execute(select(*_USER_COLUMNS).where(User.external_id.in_(chunk))):
                    found[row.external_id] = _user_record(row)
        return [found[i] for i in ids if i in found]

    def get_items(self, ids: Sequence[str]) -> list[ItemRecord]:
        """The items with these external ids that exist, in the order asked."""
        found: dict[str, ItemRecord] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(ids)):
                for row in conn.execute(select(*_ITEM_COLUMNS).where(Item.external_id.in_(chunk))):
                    found[row.external_id] = _item_record(row)
        return [found[i] for i in ids if i in found]

    def iter_users(self, *, batch_size: int = 5000) -> Iterator[UserRecord]:
        """Every user, in insertion order, fetched in batches."""
        with self.engine.connect() as conn:
            query = select(*_USER_COLUMNS).order_by(User.id)
            for row in conn.execution_options(yield_per=batch_size).execute(query):
                yield _user_record(row)

    def iter_items(self, *, batch_size: int = 5000) -> Iterator[ItemRecord]:
        """Every item, in insertion order, fetched in batches."""
        with self.engine.connect() as conn:
            query = select(*_ITEM_COLUMNS).order_by(Item.id)
            for row in conn.execution_options(yield_per=batch_size).execute(query):
                yield _item_record(row)

    def iter_events(
        self,
        *,
        user: str | None = None,
        item: str | None = None,
        since: datetime | None = None,
        include_generated: bool = False,
        batch_size: int = 5000,
    ) -> Iterator[EventRecord]:
        """Events in (timestamp, insertion) order, optionally of one user, one item, or after a moment."""
        query = (
            select(
                User.external_id,
                Item.external_id,
                Event.type,
                Event.timestamp,
                Event.value,
                Event.text,
                Event.idempotency_key,
                Event.generated,
            )
            .join(User, User.id == Event.user_id)
            .join(Item, Item.id == Event.item_id)
            .order_by(Event.timestamp, Event.id)
        )
        if user is not None:
            query = query.where(User.external_id == user)
        if item is not None:
            query = query.where(Item.external_id == item)
        if since is not None:
            query = query.where(Event.timestamp > utc_naive(since))
        if not include_generated:
            query = query.where(Event.generated.is_(False))
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=batch_size).execute(query):
                yield EventRecord(*row)

    # ------------------------------------------------------------------ activity over time
    def first_seen(self) -> tuple[list[datetime], list[datetime]]:
        """When each user and each item appeared: created, or first real event if that is earlier."""
        out: list[list[datetime]] = []
        for table, key in ((User, Event.user_id), (Item, Event.item_id)):
            first = (
                select(key.label("owner"), func.min(Event.timestamp).label("at"))
                .where(Event.generated.is_(False))
                .group_by(key)
                .subquery()
            )
            query = select(table.created_at, first.c.at).outerjoin(first, first.c.owner == table.id)
            with self.engine.connect() as conn:
                out.append([min(created, at) if at is not None else created for created, at in conn.execute(query)])
        return out[0], out[1]

    def event_span(self) -> tuple[datetime, datetime] | None:
        """The first and last real event's timestamps, or None without events."""
        query = select(func.min(Event.timestamp), func.max(Event.timestamp)).where(Event.generated.is_(False))
        with self.engine.connect() as conn:
            first, last = conn.execute(query).one()
        return None if first is None else (first, last)

    def event_counts(self, edges: Sequence[datetime]) -> list[int]:
        """Real events with edges[i] < timestamp <= edges[i + 1]: len(edges) - 1 counts."""
        counts = []
        with self.engine.connect() as conn:
            # One range count per interval walks the timestamp index once in total.
            for low, high in zip(edges, edges[1:]):
                query = select(func.count()).select_from(Event).where(
                    Event.timestamp > utc_naive(low), Event.timestamp <= utc_naive(high), Event.generated.is_(False)
                )
                counts.append(int(conn.execute(query).scalar_one()))
        return counts

    # ------------------------------------------------------------------ embedding cache
    def get_embeddings(self, encoder: str, hashes: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """Cached vectors of `encoder` for these text hashes: {hash: (dim, float32 bytes)}."""
        found: dict[str, tuple[int, bytes]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(hashes))):
                query = select(Embedding.text_hash, Embedding.dim, Embedding.vector).where(
                    Embedding.encoder == encoder, Embedding.text_hash.in_(chunk)
                )
                for hash_, dim, vector in conn.execute(query):
                    found[hash_] = (dim, bytes(vector))
        return found

    def put_embeddings(self, encoder: str, vectors: dict[str, tuple[int, bytes]]) -> int:
        """Cache vectors of `encoder`; hashes already cached are kept. Returns how many were new."""
        if not vectors:
            return 0
        with self.engine.begin() as conn:
            known = set()
            for chunk in _chunks(list(vectors)):
                known.update(
                    conn.execute(
                        select(Embedding.text_hash).where(
                            Embedding.encoder == encoder, Embedding.text_hash.in_(chunk)
                        )
                    ).scalars()
                )
            rows = [
                {"encoder": encoder, "text_hash": h, "dim": dim, "vector": blob}
                for h, (dim, blob) in vectors.items()
                if h not in known
            ]
            for chunk in _chunks(rows, 2000):
                conn.execute(_insert_ignore(conn, Embedding, ["encoder", "text_hash"]), list(chunk))
            return len(rows)


    # ------------------------------------------------------------------ serving: exposure and counts
    def add_impressions(self, impressions: Iterable[ImpressionRecord]) -> int:
        """Log shown items in one transaction; rows whose item or user is gone are skipped."""
        impressions = list(impressions)
        if not impressions:
            return 0
        with self.engine.begin() as conn:
            writer = StoreWriter(conn)
            item_ids = writer._internal_ids(Item, {i.item for i in impressions})
            user_ids = writer._internal_ids(User, {i.user for i in impressions if i.user is not None})
            rows = [
                {
                    "request_id": i.request_id,
                    "user_id": user_ids.get(i.user) if i.user is not None else None,
                    "item_id": item_ids[i.item],
                    "position": i.position,
                    "source": i.source,
                    "timestamp": utc_naive(i.timestamp),
                }
                for i in impressions
                if i.item in item_ids and (i.user is None or i.user in user_ids)
            ]
            for chunk in _chunks(rows, 5000):
                conn.execute(insert(Impression), list(chunk))
            return len(rows)

    def impression_counts(self) -> dict[str, int]:
        """How often each item was shown: {item id: impressions} (items never shown are absent)."""
        query = (
            select(Item.external_id, func.count())
            .select_from(Impression)
            .join(Item, Item.id == Impression.item_id)
            .group_by(Item.external_id)
        )
        with self.engine.connect() as conn:
            return {item: int(n) for item, n in conn.execute(query)}

    def event_totals(self) -> list[tuple[str, str, int, float]]:
        """Real events per (item, type): (item id, type, count, sum of values; 0 where absent)."""
        query = (
            select(Item.external_id, Event.type, func.count(), func.coalesce(func.sum(Event.value), 0.0))
            .select_from(Event)
            .join(Item, Item.id == Event.item_id)
            .where(Event.generated.is_(False))
            .group_by(Item.external_id, Event.type)
        )
        with self.engine.connect() as conn:
            return [(item, type_, int(n), float(total)) for item, type_, n, total in conn.execute(query)]


    # ------------------------------------------------------------------ serving: change log, histories
    def last_change(self) -> int:
        """The highest change-log id (0 when the log is empty)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(Change.id), 0))).scalar_one())

    def record_change(self, kind: str, key: str) -> int:
        """Append one change-log row outside any other write (a new model version, say); its id."""
        with self.engine.begin() as conn:
            _record_changes(conn, kind, [key])
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
            row = conn.execute(_USER_VERSION, {"user_id": user_id}).one_or_none()
        if row is None:
            return None
        return _user_record(row), (int(row.id), int(row.n_events), int(row.last_event))

    def user_events(self, user_pk: int) -> list[tuple[str, str, float | None]]:
        """A user's real events in time order as (item id, type, value), by internal id (see user_version)."""
        with self.engine.connect() as conn:
            return [(item, type_, value) for item, type_, value in conn.execute(_USER_EVENTS, {"user_pk": user_pk})]


class StoreWriter:
    """Writes inside one open transaction (see `Store.transaction`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def upsert_users(self, users: Iterable[UserRecord]) -> WriteResult:
        """Insert new users, update changed ones, leave identical ones alone."""
        rows = {
            u.id: {
                "external_id": u.id,
                "attributes": _normal_json(u.attributes),
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
                "attributes": _normal_json(i.attributes),
                "derived": _normal_json(i.derived),
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
        for chunk in _chunks(keys):
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
        statement = _insert_ignore(self.conn, Event, ["idempotency_key"])
        for chunk in _chunks(rows, 5000):
            self.conn.execute(statement, list(chunk))
        return WriteResult(inserted=len(rows), unchanged=unchanged)

    def _internal_ids(self, table: type[User] | type[Item], external: set[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(sorted(external)):
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
        for chunk in _chunks(list(rows)):
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
        statement = _insert_ignore(self.conn, table, ["external_id"])
        for chunk in _chunks(new, 5000):
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
            _record_changes(self.conn, record, keys)
        return WriteResult(len(new), len(changed), len(rows) - len(new) - len(changed))


def _record_changes(conn: Connection, kind: str, keys: Sequence[str]) -> None:
    """Append change-log rows in the caller's transaction (the last write before its commit)."""
    if keys:
        now = now_utc()
        for chunk in _chunks(list(keys), 5000):
            conn.execute(insert(Change), [{"kind": kind, "key": key, "at": now} for key in chunk])


def _insert_ignore(conn: Connection, table: Any, keys: list[str]) -> Any:
    """INSERT that skips rows clashing on a unique key, in each backend's dialect."""
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=keys)
    if name in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table)
        return stmt.on_duplicate_key_update({keys[0]: stmt.inserted[keys[0]]})
    return insert(table)


def _make_engine(url: str, *, echo: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True, future=True)
    memory = parsed.database in (None, "", ":memory:")
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


_USER_COLUMNS = (User.external_id, User.attributes, User.text, User.created_at)
_ITEM_COLUMNS = (
    Item.external_id, Item.title, Item.text, Item.attributes, Item.derived, Item.created_at
)


def _user_record(row: Any) -> UserRecord:
    return UserRecord(row.external_id, dict(row.attributes or {}), row.text, row.created_at)


def _item_record(row: Any) -> ItemRecord:
    return ItemRecord(
        row.external_id,
        row.title,
        row.text,
        dict(row.attributes or {}),
        dict(row.derived or {}),
        row.created_at,
    )


# Statements of the serving hot path, built once (building a select costs more than running it).
_USER_VERSION = select(
    User.id,
    *_USER_COLUMNS,
    select(func.count(Event.id)).where(Event.user_id == User.id).correlate(User).scalar_subquery().label("n_events"),
    select(func.coalesce(func.max(Event.id), 0))
    .where(Event.user_id == User.id)
    .correlate(User)
    .scalar_subquery()
    .label("last_event"),
).where(User.external_id == bindparam("user_id"))
_USER_EVENTS = (
    select(Item.external_id, Event.type, Event.value)
    .select_from(Event)
    .join(Item, Item.id == Event.item_id)
    .where(Event.user_id == bindparam("user_pk"), Event.generated.is_(False))
    .order_by(Event.timestamp, Event.id)
)

"""SQL building blocks shared by the store's modules: engines, dialect-specific inserts, row mapping.

Everything here is private to `thaw.data`; the public face is `thaw.data.store.Store`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, create_engine, event, func, insert, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool

from thaw.data.records import ItemRecord, UserRecord, now_utc
from thaw.data.schema import Change, Event, Item, User

CHUNK = 500  # ids per IN (...) clause: well under every backend's parameter limit


def text_hash(text: str) -> str:
    """The cache key of a text: SHA-1 of its UTF-8 bytes."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most `size` values."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def normal_json(value: dict[str, Any]) -> dict[str, Any]:
    """Attributes as they come back from the database (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, sort_keys=True))


def record_changes(conn: Connection, kind: str, keys: Sequence[str]) -> None:
    """Append change-log rows in the caller's transaction (the last write before its commit)."""
    if keys:
        now = now_utc()
        for chunk in chunks(list(keys), 5000):
            conn.execute(insert(Change), [{"kind": kind, "key": key, "at": now} for key in chunk])


def insert_ignore(conn: Connection, table: Any, keys: list[str]) -> Any:
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


def make_engine(url: str, *, echo: bool) -> Engine:
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
        # Deleted rows (a forgotten user's events, say) are overwritten, not left in free pages.
        cursor.execute("PRAGMA secure_delete=ON")
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


USER_COLUMNS = (User.external_id, User.attributes, User.text, User.created_at)
ITEM_COLUMNS = (
    Item.external_id, Item.title, Item.text, Item.attributes, Item.derived, Item.created_at
)


def user_record(row: Any) -> UserRecord:
    return UserRecord(row.external_id, dict(row.attributes or {}), row.text, row.created_at)


def item_record(row: Any) -> ItemRecord:
    return ItemRecord(
        row.external_id,
        row.title,
        row.text,
        dict(row.attributes or {}),
        dict(row.derived or {}),
        row.created_at,
    )


# Statements of the serving hot path, built once (building a select costs more than running it).
USER_VERSION = select(
    User.id,
    *USER_COLUMNS,
    select(func.count(Event.id)).where(Event.user_id == User.id).correlate(User).scalar_subquery().label("n_events"),
    select(func.coalesce(func.max(Event.id), 0))
    .where(Event.user_id == User.id)
    .correlate(User)
    .scalar_subquery()
    .label("last_event"),
).where(User.external_id == bindparam("user_id"))
USER_EVENTS = (
    select(Item.external_id, Event.type, Event.value)
    .select_from(Event)
    .join(Item, Item.id == Event.item_id)
    .where(Event.user_id == bindparam("user_pk"), Event.generated.is_(False))
    .order_by(Event.timestamp, Event.id)
)

"""The store: users, items, events and cached embeddings behind any SQLAlchemy URL.

`thaw.data` is the only package that talks SQL. Backends are chosen by URL alone (`sqlite:///file`,
`postgresql+psycopg://…`, `mysql+pymysql://…`); per-backend differences stay in `thaw.data.sql`.
Writes live in `thaw.data.writer`, the serving hot path's queries in `thaw.data.serving_queries`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from typing import Any

from sqlalchemy import delete, func, select, update

from thaw.data.records import EventRecord, ItemRecord, StoreStats, UserRecord, WriteResult, utc_naive
from thaw.data.schema import Embedding, Event, Impression, Item, User
from thaw.data.serving_queries import ServingQueries
from thaw.data.sql import (
    ITEM_COLUMNS,
    USER_COLUMNS,
    chunks,
    insert_ignore,
    item_record,
    make_engine,
    record_changes,
    text_hash,
    user_record,
)
from thaw.data.writer import StoreWriter

__all__ = ["Store", "StoreWriter", "text_hash"]

log = logging.getLogger(__name__)


class Store(ServingQueries):
    """Transactional, batched access to thaw's tables.

    Every public write runs in one transaction; `transaction()` groups several writes into one.
    """

    def __init__(self, url: str, *, migrate: bool = True, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
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

    @classmethod
    def migrate_once(cls, url: str) -> None:
        """Open the store at `url`, bring its schema up to date, close it; StoreUnavailableError if it cannot."""
        from sqlalchemy.exc import SQLAlchemyError

        from thaw.data.errors import StoreUnavailableError

        try:
            with cls(url, migrate=True):
                pass
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(f"cannot open the store {url}: {getattr(exc, 'orig', None) or exc}") from exc

    def forget_impressions(self) -> int:
        """Delete every logged impression (benchmarks start from the same store); how many."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(Impression)).rowcount or 0)

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
                record_changes(conn, "item", [item_id])
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
            record_changes(conn, "item", [item_id])
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
            for chunk in chunks(list(ids)):
                for row in conn.execute(select(*USER_COLUMNS).where(User.external_id.in_(chunk))):
                    found[row.external_id] = user_record(row)
        return [found[i] for i in ids if i in found]

    def get_items(self, ids: Sequence[str]) -> list[ItemRecord]:
        """The items with these external ids that exist, in the order asked."""
        found: dict[str, ItemRecord] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(list(ids)):
                for row in conn.execute(select(*ITEM_COLUMNS).where(Item.external_id.in_(chunk))):
                    found[row.external_id] = item_record(row)
        return [found[i] for i in ids if i in found]

    def iter_users(self, *, batch_size: int = 5000) -> Iterator[UserRecord]:
        """Every user, in insertion order, fetched in batches."""
        with self.engine.connect() as conn:
            query = select(*USER_COLUMNS).order_by(User.id)
            for row in conn.execution_options(yield_per=batch_size).execute(query):
                yield user_record(row)

    def iter_items(self, *, batch_size: int = 5000) -> Iterator[ItemRecord]:
        """Every item, in insertion order, fetched in batches."""
        with self.engine.connect() as conn:
            query = select(*ITEM_COLUMNS).order_by(Item.id)
            for row in conn.execution_options(yield_per=batch_size).execute(query):
                yield item_record(row)

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
            for chunk in chunks(list(dict.fromkeys(hashes))):
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
            for chunk in chunks(list(vectors)):
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
            for chunk in chunks(rows, 2000):
                conn.execute(insert_ignore(conn, Embedding, ["encoder", "text_hash"]), list(chunk))
            return len(rows)

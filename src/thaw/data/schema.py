"""ORM tables: users, items, events and the embedding cache.

The Alembic migrations in `thaw/migrations` create exactly these tables; a contract test compares
the two on every backend.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Microsecond timestamps everywhere (MariaDB's DATETIME defaults to whole seconds).
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# SQLite only auto-increments INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# MariaDB's TEXT holds 64 KB; reviews and descriptions may be longer.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
Blob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


class Base(DeclarativeBase):
    """Declarative base for thaw's tables."""


class User(Base):
    """A person, known by the external id the client uses."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    text: Mapped[str | None] = mapped_column(LongText, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class Item(Base):
    """A catalogue entry; `derived` holds interaction-derived attributes (never cold-item content)."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    title: Mapped[str] = mapped_column(LongText, nullable=False, default="")
    text: Mapped[str | None] = mapped_column(LongText, nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    derived: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class Event(Base):
    """One interaction. Deleting its user or item deletes it too."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_time", "user_id", "timestamp"),
        Index("ix_events_item", "item_id"),
        Index("ix_events_time", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    item_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False
    )
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    text: Mapped[str | None] = mapped_column(LongText, nullable=True)
    timestamp: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    generated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class Embedding(Base):
    """A cached text vector, keyed by (encoder name, hash of the text)."""

    __tablename__ = "embeddings"

    encoder: Mapped[str] = mapped_column(String(200), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    vector: Mapped[bytes] = mapped_column(Blob, nullable=False)


class Impression(Base):
    """One item shown to someone in a recommendation list (the exposure log behind exploration).

    `user_id` is empty for someone not stored (an onboarding request); deleting the user or the
    item deletes their impressions.
    """

    __tablename__ = "impressions"
    __table_args__ = (
        Index("ix_impressions_item", "item_id"),
        Index("ix_impressions_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    item_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    timestamp: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class Change(Base):
    """One catalogue change (an item added, changed or deleted), for other serving workers to replay.

    Written in the same transaction as the change itself; `kind` is "item" and `key` the item's
    external id (the reader re-reads the item: the row says only *that* it changed). Old rows are
    pruned by the servers.
    """

    __tablename__ = "changes"
    # AUTOINCREMENT: SQLite must never hand out an id again once its row is pruned (readers
    # remember the last id they applied).
    __table_args__ = (Index("ix_changes_at", "at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

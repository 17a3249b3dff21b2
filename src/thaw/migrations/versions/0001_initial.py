"""Initial schema: users, items, events, embedding cache.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from thaw.data.schema import BigId, Blob, LongText, Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("external_id", sa.String(255), nullable=False, unique=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("text", LongText, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("external_id", sa.String(255), nullable=False, unique=True),
        sa.Column("title", LongText, nullable=False),
        sa.Column("text", LongText, nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("derived", sa.JSON(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "item_id", sa.Integer(), sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("text", LongText, nullable=True),
        sa.Column("timestamp", Timestamp, nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True, unique=True),
        sa.Column("generated", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_events_user_time", "events", ["user_id", "timestamp"])
    op.create_index("ix_events_item", "events", ["item_id"])
    op.create_index("ix_events_time", "events", ["timestamp"])
    op.create_table(
        "embeddings",
        sa.Column("encoder", sa.String(200), primary_key=True),
        sa.Column("text_hash", sa.String(64), primary_key=True),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", Blob, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("embeddings")
    op.drop_index("ix_events_time", table_name="events")
    op.drop_index("ix_events_item", table_name="events")
    op.drop_index("ix_events_user_time", table_name="events")
    op.drop_table("events")
    op.drop_table("items")
    op.drop_table("users")

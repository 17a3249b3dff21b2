"""Impression log for exploration (which items were shown to whom, where, by which source).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from thaw.data.schema import BigId, Timestamp

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "impressions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column(
            "item_id", sa.Integer(), sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("timestamp", Timestamp, nullable=False),
    )
    op.create_index("ix_impressions_item", "impressions", ["item_id"])
    op.create_index("ix_impressions_user", "impressions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_impressions_user", table_name="impressions")
    op.drop_index("ix_impressions_item", table_name="impressions")
    op.drop_table("impressions")

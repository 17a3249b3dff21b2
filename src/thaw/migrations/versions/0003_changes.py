"""Change log of catalogue writes, so that several serving workers on one store stay in step.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from thaw.data.schema import BigId, Timestamp

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sqlite_autoincrement=True,  # ids are never reused after pruning
    )
    op.create_index("ix_changes_at", "changes", ["at"])


def downgrade() -> None:
    op.drop_index("ix_changes_at", table_name="changes")
    op.drop_table("changes")

"""Holds of calls in flight, one row each, so that a hold a call never settled can be found and released.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.Integer, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
        sa.Column("nanos", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("window", sa.BigInteger, nullable=True),
        sa.Column("replica", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("deadline", sa.DateTime, nullable=False),
    )
    op.create_index("ix_holds_key_id", "holds", ["key_id"])
    op.create_index("ix_holds_deadline", "holds", ["deadline"])


def downgrade() -> None:
    op.drop_table("holds")

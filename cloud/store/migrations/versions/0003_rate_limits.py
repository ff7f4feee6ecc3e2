"""rate limits (issue 12): token buckets kept in the database, so that every API process draws
from the same counts (cloud/services/ratelimits.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("full_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_buckets")),
    )
    op.create_index(op.f("ix_rate_buckets_full_at_ms"), "rate_buckets", ["full_at_ms"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_buckets_full_at_ms"), table_name="rate_buckets")
    op.drop_table("rate_buckets")

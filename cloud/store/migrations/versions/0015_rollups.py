"""rollups: hourly and daily pre-aggregates for the dashboard (issue 14 part 7).

cloud/services/rollups.py keeps them: each call adds the rows stored since the last one (by row id,
per source) and moves the source's watermark in the same transaction. Entries have random text ids,
so they get roll_seq: on PostgreSQL from a sequence (existing rows numbered in creation order);
SQLite has a rowid for that and leaves the column NULL.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None

FIGURES = ("taps", "entries", "shares", "orders", "revenue_minor", "paid_minor")


def _counts(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(n, sa.BigInteger(), nullable=False) for n in names]


def upgrade() -> None:
    op.create_table(
        "rollup_state",
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("rolled_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_rollup_state")),
    )
    op.create_table(
        "rollup_device_days",
        sa.Column("campaign_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day_ms", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("device_id", sa.String(16), nullable=False),
        *_counts(*FIGURES),
        sa.PrimaryKeyConstraint("campaign_id", "day_ms", "device_id", name=op.f("pk_rollup_device_days")),
    )
    op.create_table(
        "rollup_campaign_hours",
        sa.Column("campaign_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hour_ms", sa.BigInteger(), autoincrement=False, nullable=False),
        *_counts(*FIGURES),
        sa.PrimaryKeyConstraint("campaign_id", "hour_ms", name=op.f("pk_rollup_campaign_hours")),
    )
    op.create_table(
        "rollup_depth_days",
        sa.Column("campaign_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day_ms", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("depth", sa.Integer(), autoincrement=False, nullable=False),
        *_counts("entries"),
        sa.PrimaryKeyConstraint("campaign_id", "day_ms", "depth", name=op.f("pk_rollup_depth_days")),
    )
    op.create_table(
        "rollup_sharer_days",
        sa.Column("campaign_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day_ms", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("participant_id", sa.Integer(), autoincrement=False, nullable=False),
        *_counts("entries", "orders", "payouts", "earned_minor"),
        sa.PrimaryKeyConstraint("campaign_id", "day_ms", "participant_id",
                                name=op.f("pk_rollup_sharer_days")),
    )
    op.create_table(
        "rollup_device_epochs",
        sa.Column("device_id", sa.String(16), nullable=False),
        sa.Column("epoch", sa.BigInteger(), autoincrement=False, nullable=False),
        *_counts("events", "taps", "min_seq", "max_seq", "last_received_ms"),
        sa.PrimaryKeyConstraint("device_id", "epoch", name=op.f("pk_rollup_device_epochs")),
    )
    with op.batch_alter_table("entries") as b:
        b.add_column(sa.Column("roll_seq", sa.BigInteger(), nullable=True))
        b.create_unique_constraint(op.f("uq_entries_roll_seq"), ["roll_seq"])
    if op.get_bind().dialect.name == "postgresql":
        # a server-side default: the number is drawn inside the INSERT, under the table's lock
        # (rollups.py waits on that lock for a safe horizon)
        op.execute("CREATE SEQUENCE entries_roll_seq OWNED BY entries.roll_seq")
        op.execute("UPDATE entries SET roll_seq = n.r FROM (SELECT id, row_number() OVER "
                   "(ORDER BY created_at_ms, id) AS r FROM entries) n WHERE entries.id = n.id")
        op.execute("SELECT setval('entries_roll_seq', "
                   "(SELECT coalesce(max(roll_seq), 0) + 1 FROM entries), false)")
        op.execute("ALTER TABLE entries ALTER COLUMN roll_seq SET DEFAULT nextval('entries_roll_seq')")


def downgrade() -> None:
    with op.batch_alter_table("entries") as b:
        b.drop_constraint(op.f("uq_entries_roll_seq"), type_="unique")
        b.drop_column("roll_seq")  # drops the sequence it owns on PostgreSQL
    for t in ("rollup_device_epochs", "rollup_sharer_days", "rollup_depth_days", "rollup_campaign_hours",
              "rollup_device_days", "rollup_state"):
        op.drop_table(t)

"""gateway trust (issue 12): gateways can be revoked and their keys rotated; the quarantine has a
quota per gateway, and what the quota turned away is counted in quarantine_drops.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_GATEWAY_COLUMNS = (
    sa.Column("revoked_at_ms", sa.BigInteger(), nullable=True),
    sa.Column("key_rotated_at_ms", sa.BigInteger(), nullable=True),
    sa.Column("prev_public_key", sa.LargeBinary(32), nullable=True),
    sa.Column("prev_key_until_ms", sa.BigInteger(), nullable=True),
    sa.Column("prev_key_until_bseq", sa.BigInteger(), nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table("gateways") as b:
        for col in _GATEWAY_COLUMNS:
            b.add_column(col.copy())
    op.create_index(op.f("ix_quarantine_gateway_id"), "quarantine", ["gateway_id"])
    op.create_table(
        "quarantine_drops",
        sa.Column("gateway_id", sa.String(16), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("last_reason", sa.String(64), nullable=False),
        sa.Column("last_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", name=op.f("pk_quarantine_drops")),
    )


def downgrade() -> None:
    op.drop_table("quarantine_drops")
    op.drop_index(op.f("ix_quarantine_gateway_id"), table_name="quarantine")
    with op.batch_alter_table("gateways") as b:
        for col in reversed(_GATEWAY_COLUMNS):
            b.drop_column(col.name)

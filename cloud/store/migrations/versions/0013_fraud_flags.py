"""fraud flags: review of flagged payouts (issue 14 part 6).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "fraud_flags",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("decided_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_fraud_flags_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_fraud_flags_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_flags")),
        sa.UniqueConstraint("order_id", "rule", name="uq_fraud_flag_order_rule"),
    )
    op.create_index(op.f("ix_fraud_flags_merchant_id"), "fraud_flags", ["merchant_id"])
    op.create_index(op.f("ix_fraud_flags_order_id"), "fraud_flags", ["order_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_fraud_flags_order_id"), table_name="fraud_flags")
    op.drop_index(op.f("ix_fraud_flags_merchant_id"), table_name="fraud_flags")
    op.drop_table("fraud_flags")

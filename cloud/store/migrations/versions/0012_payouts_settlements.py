"""payouts settlements: due payouts per sharer, batches marked paid (issue 14 part 5).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "settlements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_settlements_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements")),
        sa.UniqueConstraint("merchant_id", "idempotency_key", name="uq_settlement_idem"),
    )
    op.create_index(op.f("ix_settlements_merchant_id"), "settlements", ["merchant_id"])
    op.create_table(
        "settlement_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("settlement_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("txn_id", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.ForeignKeyConstraint(["settlement_id"], ["settlements.id"],
                                name=op.f("fk_settlement_lines_settlement_id_settlements")),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"],
                                name=op.f("fk_settlement_lines_participant_id_participants")),
        sa.ForeignKeyConstraint(["txn_id"], ["ledger_txns.id"],
                                name=op.f("fk_settlement_lines_txn_id_ledger_txns")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_lines")),
        sa.UniqueConstraint("txn_id", name=op.f("uq_settlement_lines_txn_id")),
    )
    op.create_index(op.f("ix_settlement_lines_settlement_id"), "settlement_lines", ["settlement_id"])
    op.create_index(op.f("ix_settlement_lines_participant_id"), "settlement_lines", ["participant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_settlement_lines_participant_id"), table_name="settlement_lines")
    op.drop_index(op.f("ix_settlement_lines_settlement_id"), table_name="settlement_lines")
    op.drop_table("settlement_lines")
    op.drop_index(op.f("ix_settlements_merchant_id"), table_name="settlements")
    op.drop_table("settlements")

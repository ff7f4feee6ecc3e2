"""trust log (issue 16): the append-only Merkle log (log_state, log_leaves, log_nodes), its signed
checkpoints and witnesses' cosignatures, and accepted batch envelopes kept verbatim. Existing rows
are not logged retroactively: the log starts empty and proves what happens from now on.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    state = op.create_table(
        "log_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_state")),
    )
    op.bulk_insert(state, [{"id": 1, "size": 0, "frontier": b""}])
    op.create_table(
        "log_leaves",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(120), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_log_leaves")),
    )
    op.create_index(op.f("ix_log_leaves_ref"), "log_leaves", ["ref"])
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_log_nodes")),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_log_checkpoints")),
    )
    op.create_table(
        "log_cosignatures",
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("witness", sa.String(200), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["size"], ["log_checkpoints.size"],
                                name=op.f("fk_log_cosignatures_size_log_checkpoints")),
        sa.PrimaryKeyConstraint("size", "witness", name=op.f("pk_log_cosignatures")),
    )
    op.create_table(
        "batch_envelopes",
        sa.Column("gateway_id", sa.String(16), nullable=False),
        sa.Column("bseq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", "bseq", name=op.f("pk_batch_envelopes")),
    )


def downgrade() -> None:
    op.drop_table("batch_envelopes")
    op.drop_table("log_cosignatures")
    op.drop_table("log_checkpoints")
    op.drop_table("log_nodes")
    op.drop_index(op.f("ix_log_leaves_ref"), table_name="log_leaves")
    op.drop_table("log_leaves")
    op.drop_table("log_state")

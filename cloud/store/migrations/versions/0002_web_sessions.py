"""web sessions (issue 12): merchant page logins, stored as the hash of their token.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_web_sessions_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_web_sessions_key_id_api_keys")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_web_sessions")),
    )
    op.create_index(op.f("ix_web_sessions_merchant_id"), "web_sessions", ["merchant_id"])
    op.create_index(op.f("ix_web_sessions_expires_at_ms"), "web_sessions", ["expires_at_ms"])


def downgrade() -> None:
    op.drop_index(op.f("ix_web_sessions_expires_at_ms"), table_name="web_sessions")
    op.drop_index(op.f("ix_web_sessions_merchant_id"), table_name="web_sessions")
    op.drop_table("web_sessions")

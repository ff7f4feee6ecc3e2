"""users (issue 14): people who sign in to the merchant console with a password, one-time
invitations, and revocable read-only dashboard links.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("disabled_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_users_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("login", name=op.f("uq_users_login")),
    )
    op.create_index(op.f("ix_users_merchant_id"), "users", ["merchant_id"])
    op.create_table(
        "invites",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("used_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_invites_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_invites_user_id_users")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_invites")),
    )
    op.create_index(op.f("ix_invites_merchant_id"), "invites", ["merchant_id"])
    op.create_table(
        "shared_links",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_shared_links_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shared_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_shared_links_token_hash")),
    )
    op.create_index(op.f("ix_shared_links_merchant_id"), "shared_links", ["merchant_id"])
    with op.batch_alter_table("web_sessions") as b:
        b.add_column(sa.Column("shared_link_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("web_sessions") as b:
        b.drop_column("shared_link_id")
    op.drop_index(op.f("ix_shared_links_merchant_id"), table_name="shared_links")
    op.drop_table("shared_links")
    op.drop_index(op.f("ix_invites_merchant_id"), table_name="invites")
    op.drop_table("invites")
    op.drop_index(op.f("ix_users_merchant_id"), table_name="users")
    op.drop_table("users")

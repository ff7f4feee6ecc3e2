"""sales (issue 13): a pool as a share of the sale (pool_bp, pool_cap_minor), the attribution
window, each order's channel, click tokens (clicks) and checkout codes (checkout_codes).

Existing campaigns get a 30-day window and existing orders the channel "api" (server defaults,
so rows already there are filled in).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def _campaign_columns() -> list[sa.Column[object]]:
    return [sa.Column("pool_bp", sa.Integer(), nullable=True),
            sa.Column("pool_cap_minor", sa.BigInteger(), nullable=True),
            sa.Column("attribution_window_s", sa.Integer(), nullable=False,
                      server_default=str(30 * 24 * 3600))]


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as b:
        for col in _campaign_columns():
            b.add_column(col)
    with op.batch_alter_table("orders") as b:
        b.add_column(sa.Column("channel", sa.String(8), nullable=False, server_default="api"))
    op.create_table(
        "clicks",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("entry_id", sa.String(32), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], name=op.f("fk_clicks_entry_id_entries")),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_clicks_campaign_id_campaigns")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_clicks")),
    )
    op.create_index(op.f("ix_clicks_entry_id"), "clicks", ["entry_id"])
    op.create_index(op.f("ix_clicks_campaign_id"), "clicks", ["campaign_id"])
    op.create_table(
        "checkout_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(32), nullable=False),
        sa.Column("code", sa.String(8), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_checkout_codes_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_checkout_codes_campaign_id_campaigns")),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"],
                                name=op.f("fk_checkout_codes_entry_id_entries")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_checkout_codes_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_codes")),
        sa.UniqueConstraint("merchant_id", "code", name="uq_checkout_code"),
    )
    op.create_index(op.f("ix_checkout_codes_campaign_id"), "checkout_codes", ["campaign_id"])
    op.create_index(op.f("ix_checkout_codes_entry_id"), "checkout_codes", ["entry_id"])
    op.create_index(op.f("ix_checkout_codes_expires_at_ms"), "checkout_codes", ["expires_at_ms"])


def downgrade() -> None:
    op.drop_table("checkout_codes")
    op.drop_table("clicks")
    with op.batch_alter_table("orders") as b:
        b.drop_column("channel")
    with op.batch_alter_table("campaigns") as b:
        for col in reversed(_campaign_columns()):
            b.drop_column(col.name)

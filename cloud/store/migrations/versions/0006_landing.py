"""landing (issue 13): the landing page's image, the merchant's online service and the currency
of a campaign; how each entry came (entries.via, with "base" for a bare base code); the codes a
shopper saved (saved_codes).

Existing entries get their kind from what they hold, as the API reported it before: no device is a
share, a device without a window a printed code, else a display.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as b:
        b.add_column(sa.Column("image_url", sa.String(500), nullable=True))
        b.add_column(sa.Column("target_url", sa.String(500), nullable=True))
        b.add_column(sa.Column("currency", sa.String(3), nullable=False, server_default="CNY"))
    with op.batch_alter_table("entries") as b:
        b.add_column(sa.Column("via", sa.String(8), nullable=False, server_default="display"))
    op.execute("UPDATE entries SET via = CASE WHEN device_id IS NULL THEN 'share' "
               "WHEN \"window\" IS NULL THEN 'printed' ELSE 'display' END")
    op.create_table(
        "saved_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("visitor", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_saved_codes_campaign_id_campaigns")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_codes")),
        sa.UniqueConstraint("visitor", "campaign_id", name="uq_saved_code"),
    )
    op.create_index(op.f("ix_saved_codes_campaign_id"), "saved_codes", ["campaign_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_saved_codes_campaign_id"), table_name="saved_codes")
    op.drop_table("saved_codes")
    with op.batch_alter_table("entries") as b:
        b.drop_column("via")
    with op.batch_alter_table("campaigns") as b:
        b.drop_column("currency")
        b.drop_column("target_url")
        b.drop_column("image_url")

"""campaign versions: drafts, published versions, the version on each order (issue 14 part 3).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("settings_json", sa.Text(), nullable=False),
        sa.Column("saved_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("saved_by", sa.String(100), nullable=False),
        sa.Column("published_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("published_by", sa.String(100), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_campaign_versions_campaign_id_campaigns")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_versions")),
        sa.UniqueConstraint("campaign_id", "version", name="uq_campaign_version"),
    )
    op.create_index(op.f("ix_campaign_versions_campaign_id"), "campaign_versions", ["campaign_id"])
    with op.batch_alter_table("orders") as b:
        b.add_column(sa.Column("campaign_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as b:
        b.drop_column("campaign_version")
    op.drop_index(op.f("ix_campaign_versions_campaign_id"), table_name="campaign_versions")
    op.drop_table("campaign_versions")

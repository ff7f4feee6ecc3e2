"""gateway status: the gateways' retained status, ingested (issue 14 part 2).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_status",
        sa.Column("gateway_id", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sent_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("figures_json", sa.Text(), nullable=False),
        sa.Column("refused", sa.String(200), nullable=False),
        sa.Column("refused_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["gateway_id"], ["gateways.id"],
                                name=op.f("fk_gateway_status_gateway_id_gateways")),
        sa.PrimaryKeyConstraint("gateway_id", name=op.f("pk_gateway_status")),
    )
    op.create_table(
        "device_health",
        sa.Column("device_id", sa.String(16), nullable=False),
        sa.Column("gateway_id", sa.String(16), nullable=False),
        sa.Column("seen_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("battery_low", sa.Boolean(), nullable=True),
        sa.Column("firmware", sa.Integer(), nullable=True),
        sa.Column("rssi", sa.SmallInteger(), nullable=True),
        sa.Column("reported_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name=op.f("fk_device_health_device_id_devices")),
        sa.ForeignKeyConstraint(["gateway_id"], ["gateways.id"],
                                name=op.f("fk_device_health_gateway_id_gateways")),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_health")),
    )
    op.create_index(op.f("ix_device_health_gateway_id"), "device_health", ["gateway_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_device_health_gateway_id"), table_name="device_health")
    op.drop_table("device_health")
    op.drop_table("gateway_status")

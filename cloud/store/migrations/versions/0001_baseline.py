"""Baseline: the schema cloud/models.py had when migrations began (as create_all made it).

Revision ID: 0001
Revises:
Create Date: 2026-11-23 21:08:38.900748
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gateway_id", sa.String(length=16), nullable=False),
        sa.Column("bseq", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.UniqueConstraint("gateway_id", "bseq", name="uq_batch"),
    )
    op.create_table(
        "device_config_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gateway_id", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.String(length=16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("device_version", sa.BigInteger(), nullable=True),
        sa.Column("reported_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_config_results")),
        sa.UniqueConstraint("gateway_id", "device_id", "version", name="uq_config_result"),
    )
    op.create_index(op.f("ix_device_config_results_device_id"), "device_config_results", ["device_id"])

    op.create_table(
        "merchants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("gateway_id", sa.String(length=16), nullable=True),
        sa.Column("topic", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint("digest", name=op.f("uq_quarantine_digest")),
    )
    op.create_index(op.f("ix_quarantine_reason"), "quarantine", ["reason"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("gateway_id", sa.String(length=16), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_api_keys_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_merchant_id"), "api_keys", ["merchant_id"])

    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("base_code", sa.String(length=16), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("digits", sa.Integer(), nullable=False),
        sa.Column("period_s", sa.Integer(), nullable=False),
        sa.Column("pool_minor", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("rule_params_json", sa.Text(), nullable=False),
        sa.Column("budget_minor", sa.BigInteger(), nullable=True),
        sa.Column("spent_minor", sa.BigInteger(), nullable=False),
        sa.Column("hold_s", sa.Integer(), nullable=False),
        sa.Column("starts_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("ends_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("released_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("label_zh", sa.String(length=200), nullable=False),
        sa.Column("label_en", sa.String(length=200), nullable=False),
        sa.Column("landing_zh", sa.Text(), nullable=False),
        sa.Column("landing_en", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_campaigns_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(op.f("ix_campaigns_merchant_id"), "campaigns", ["merchant_id"])
    op.create_index(
        "uq_campaigns_rented_base",
        "campaigns",
        ["base_code"],
        unique=True,
        sqlite_where=sa.text("released_at_ms IS NULL"),
        postgresql_where=sa.text("released_at_ms IS NULL"),
    )

    op.create_table(
        "gateways",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_gateways_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateways")),
    )
    op.create_table(
        "locations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=400), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_locations_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_locations")),
    )
    op.create_index(op.f("ix_locations_merchant_id"), "locations", ["merchant_id"])

    op.create_table(
        "sharer_accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("ref_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_sharer_accounts_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharer_accounts")),
        sa.UniqueConstraint("merchant_id", "ref_hash", name="uq_sharer_account"),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("device_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("board", sa.String(length=64), nullable=False),
        sa.Column("printed", sa.Boolean(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_devices_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_devices_location_id_locations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("campaign_id", "slot", name=op.f("uq_devices_campaign_id")),
    )
    op.create_index(op.f("ix_devices_campaign_id"), "devices", ["campaign_id"])
    op.create_index(op.f("ix_devices_location_id"), "devices", ["location_id"])

    op.create_table(
        "gateway_configs",
        sa.Column("gateway_id", sa.String(length=16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("firmware_json", sa.Text(), nullable=False),
        sa.Column("applied_version", sa.BigInteger(), nullable=True),
        sa.Column("refused", sa.String(length=200), nullable=False),
        sa.Column("reported_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_gateway_configs_gateway_id_gateways")
        ),
        sa.PrimaryKeyConstraint("gateway_id", name=op.f("pk_gateway_configs")),
    )
    op.create_table(
        "device_config_writes",
        sa.Column("device_id", sa.String(length=16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_device_config_writes_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_config_writes")),
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("device_id", sa.String(length=16), nullable=True),
        sa.Column("window", sa.BigInteger(), nullable=True),
        sa.Column("parent_participant_id", sa.Integer(), nullable=True),
        sa.Column("root_device_id", sa.String(length=16), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("visitor", sa.String(length=64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_entries_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_entries_device_id_devices")),
        sa.ForeignKeyConstraint(
            ["parent_participant_id"],
            ["participants.id"],
            name=op.f("fk_entries_parent_participant_id_participants"),
            use_alter=True,
        ),
        sa.ForeignKeyConstraint(
            ["root_device_id"], ["devices.id"], name=op.f("fk_entries_root_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entries")),
    )
    op.create_index(op.f("ix_entries_campaign_id"), "entries", ["campaign_id"])
    op.create_index(op.f("ix_entries_device_id"), "entries", ["device_id"])
    op.create_index(op.f("ix_entries_parent_participant_id"), "entries", ["parent_participant_id"])
    op.create_index(op.f("ix_entries_visitor"), "entries", ["visitor"])

    op.create_table(
        "events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("device_id", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(length=8), nullable=False),
        sa.Column("raw", sa.LargeBinary(length=40), nullable=False),
        sa.Column("gateway_id", sa.String(length=16), nullable=False),
        sa.Column("bseq", sa.BigInteger(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_events_device_id_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("device_id", "epoch", "seq", name="uq_event_key"),
    )
    op.create_index("ix_events_device_kind", "events", ["device_id", "kind"])

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("pool_minor", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("rule_params_json", sa.Text(), nullable=False),
        sa.Column("chain_json", sa.Text(), nullable=False),
        sa.Column("response_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("refund_json", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("refunded_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_orders_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], name=op.f("fk_orders_entry_id_entries")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_orders_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("merchant_id", "idempotency_key", name="uq_order_idem"),
    )
    op.create_index(op.f("ix_orders_campaign_id"), "orders", ["campaign_id"])

    op.create_table(
        "participants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(length=32), nullable=False),
        sa.Column("share_code", sa.String(length=6), nullable=False),
        sa.Column("visitor", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["sharer_accounts.id"], name=op.f("fk_participants_account_id_sharer_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_participants_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], name=op.f("fk_participants_entry_id_entries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participants")),
        sa.UniqueConstraint("campaign_id", "share_code", name="uq_share_code"),
        sa.UniqueConstraint("entry_id", name=op.f("uq_participants_entry_id")),
    )
    op.create_index(op.f("ix_participants_account_id"), "participants", ["account_id"])
    op.create_index(op.f("ix_participants_visitor"), "participants", ["visitor"])
    # entries and participants refer to each other. As create_all does: SQLite (no ALTER TABLE ..
    # ADD CONSTRAINT) got this key inline in CREATE TABLE entries; other databases add it now.
    if op.get_context().dialect.supports_alter:
        op.create_foreign_key(op.f("fk_entries_parent_participant_id_participants"), "entries",
                              "participants", ["parent_participant_id"], ["id"])

    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_ledger_accounts_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_ledger_accounts_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_ledger_accounts_participant_id_participants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("ref", name=op.f("uq_ledger_accounts_ref")),
    )
    op.create_index(op.f("ix_ledger_accounts_merchant_id"), "ledger_accounts", ["merchant_id"])
    op.create_index(op.f("ix_ledger_accounts_participant_id"), "ledger_accounts", ["participant_id"])

    op.create_table(
        "ledger_txns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_ledger_txns_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_ledger_txns_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_ledger_txns_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_txns")),
        sa.UniqueConstraint("order_id", "kind", name="uq_ledger_txn_order_kind"),
    )
    op.create_index(op.f("ix_ledger_txns_campaign_id"), "ledger_txns", ["campaign_id"])
    op.create_index(op.f("ix_ledger_txns_merchant_id"), "ledger_txns", ["merchant_id"])

    op.create_table(
        "payouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("payee", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_payouts_order_id_orders")),
        sa.ForeignKeyConstraint(
            ["participant_id"], ["participants.id"], name=op.f("fk_payouts_participant_id_participants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
    )
    op.create_index(op.f("ix_payouts_order_id"), "payouts", ["order_id"])
    op.create_index(op.f("ix_payouts_participant_id"), "payouts", ["participant_id"])

    op.create_table(
        "ledger_entries",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("txn_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("due_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ledger_accounts.id"], name=op.f("fk_ledger_entries_account_id_ledger_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["txn_id"], ["ledger_txns.id"], name=op.f("fk_ledger_entries_txn_id_ledger_txns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index(op.f("ix_ledger_entries_account_id"), "ledger_entries", ["account_id"])
    op.create_index(op.f("ix_ledger_entries_txn_id"), "ledger_entries", ["txn_id"])


def downgrade() -> None:
    if op.get_context().dialect.supports_alter:
        op.drop_constraint(op.f("fk_entries_parent_participant_id_participants"), "entries",
                           type_="foreignkey")
    op.drop_table("ledger_entries")
    op.drop_table("payouts")
    op.drop_table("ledger_txns")
    op.drop_table("ledger_accounts")
    op.drop_table("participants")
    op.drop_table("orders")
    op.drop_table("events")
    op.drop_table("entries")
    op.drop_table("device_config_writes")
    op.drop_table("gateway_configs")
    op.drop_table("devices")
    op.drop_table("sharer_accounts")
    op.drop_table("locations")
    op.drop_table("gateways")
    op.drop_table("campaigns")
    op.drop_table("api_keys")
    op.drop_table("quarantine")
    op.drop_table("merchants")
    op.drop_table("device_config_results")
    op.drop_table("batches")

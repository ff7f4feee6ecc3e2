"""Secrets at rest (issue 12): device root keys sealed in place under the master key, and account
references keyed with an HMAC.

devices.device_key (32 plaintext bytes) becomes devices.key_sealed (cloud/store/vault.py: AES-GCM,
the device id as associated data). sharer_accounts.ref_hash, SHA-256(merchant "\\n" reference),
becomes HMAC(account key, that SHA-256): exactly what the cloud now computes from the reference,
so every account is still found without knowing its reference.

The master key comes from cloud.store.migrate (the settings' MCODE_CLOUD_MASTER_KEY), or from the
environment when run otherwise. An empty database needs none; rows without a key stop the
migration with a clear message, and nothing changes.

Downgrade opens the device keys again (it needs the key too). Account references cannot go back:
an HMAC does not reveal the SHA-256 under it, so after a downgrade an account is found again only
once its reference is linked anew (a new account row).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context, op

from cloud.settings import ENV_PREFIX, SettingsError, parse_master_keys
from cloud.store.vault import Vault

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_devices = sa.table("devices", sa.column("id", sa.String), sa.column("device_key", sa.LargeBinary),
                    sa.column("key_sealed", sa.LargeBinary))
_accounts = sa.table("sharer_accounts", sa.column("id", sa.Integer), sa.column("ref_hash", sa.String))


def _vault() -> Vault:
    value = context.config.attributes.get("master_key") or os.environ.get(ENV_PREFIX + "MASTER_KEY", "")
    keys = parse_master_keys(value)
    if not keys:
        raise SettingsError(
            f"migration 0005 seals the stored device keys and needs the master key: set "
            f"{ENV_PREFIX}MASTER_KEY",
            f"迁移 0005 要密封已存的设备密钥，需要主密钥：请设置 {ENV_PREFIX}MASTER_KEY")
    return Vault(keys)


def upgrade() -> None:
    conn = op.get_bind()
    devices = [(i, bytes(k)) for i, k in conn.execute(sa.select(_devices.c.id, _devices.c.device_key))]
    accounts = list(conn.execute(sa.select(_accounts.c.id, _accounts.c.ref_hash)))
    vault = _vault() if devices or accounts else None
    with op.batch_alter_table("devices") as b:
        b.add_column(sa.Column("key_sealed", sa.LargeBinary(80), nullable=True))
    if vault is not None and devices:
        conn.execute(_devices.update().where(_devices.c.id == sa.bindparam("b_id"))
                     .values(key_sealed=sa.bindparam("b_sealed")),
                     [{"b_id": i, "b_sealed": vault.seal_device_key(i, k)} for i, k in devices])
    if vault is not None and accounts:
        conn.execute(_accounts.update().where(_accounts.c.id == sa.bindparam("b_id"))
                     .values(ref_hash=sa.bindparam("b_ref")),
                     [{"b_id": i, "b_ref": vault.account_refs(bytes.fromhex(h))[0]} for i, h in accounts])
    with op.batch_alter_table("devices") as b:
        b.alter_column("key_sealed", existing_type=sa.LargeBinary(80), nullable=False)
        b.drop_column("device_key")


def downgrade() -> None:
    conn = op.get_bind()
    sealed = [(i, bytes(k)) for i, k in conn.execute(sa.select(_devices.c.id, _devices.c.key_sealed))]
    vault = _vault() if sealed else None
    with op.batch_alter_table("devices") as b:
        b.add_column(sa.Column("device_key", sa.LargeBinary(32), nullable=True))
    if vault is not None:
        conn.execute(_devices.update().where(_devices.c.id == sa.bindparam("b_id"))
                     .values(device_key=sa.bindparam("b_key")),
                     [{"b_id": i, "b_key": vault.open_device_key(i, k)} for i, k in sealed])
    with op.batch_alter_table("devices") as b:
        b.alter_column("device_key", existing_type=sa.LargeBinary(32), nullable=False)
        b.drop_column("key_sealed")

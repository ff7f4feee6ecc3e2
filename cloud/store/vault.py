"""Secrets at rest: device root keys sealed with AES-256-GCM under a master key from the settings
(MCODE_CLOUD_MASTER_KEY), and account references keyed with an HMAC derived from it.

It lives in the store floor because the migration that seals existing keys in place
(migrations/versions/0005) needs it, and the store imports no service.

A sealed value is    version (1) | key id (4) | nonce (12) | AES-GCM(ciphertext || tag 16)
with associated data version | key id | purpose | owner id, so a sealed key copied onto another
device's row, or into another purpose, does not open. The key id names the master key (a hash
of it, not the key), so a new master key can go first in the setting while values sealed under
the old one still open. A running cloud's sessions carry the vault (`bind`, `of`): services reach
it from the session they already hold, and nothing is global."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, inspect, select
from sqlalchemy.orm import Session

from cloud.settings import Settings, SettingsError
from cloud.store.engine import SessionFactory, make_session_factory
from cloud.store.models import Device

VERSION = 1
KEY_ID_LEN = 4
NONCE_LEN = 12
TAG_LEN = 16
HEADER_LEN = 1 + KEY_ID_LEN
DEVICE_KEY_PURPOSE = b"mcode/v0/device-key/"
SEALED_DEVICE_KEY_LEN = HEADER_LEN + NONCE_LEN + 32 + TAG_LEN  # 65 bytes
_KEY_ID_LABEL = b"mcode/v0/master-key-id"
_ACCOUNT_LABEL = b"mcode/v0/account-ref"
_INFO = "mcode.vault"  # the key of the vault in Session.info


class SealError(RuntimeError):
    """A sealed value that does not open: an unknown master key, or a value that was altered or
    moved to another row."""

    def __init__(self, message: str, message_zh: str) -> None:
        super().__init__(f"{message} / {message_zh}")
        self.message, self.message_zh = message, message_zh


def key_id(master_key: bytes) -> bytes:
    return hashlib.sha256(_KEY_ID_LABEL + b"\0" + master_key).digest()[:KEY_ID_LEN]


class Vault:
    """Seals and opens values under the master keys (the first seals; all open)."""

    def __init__(self, master_keys: Sequence[bytes]) -> None:
        if not master_keys:
            raise ValueError("a vault needs at least one master key")
        self._aead = {key_id(k): AESGCM(k) for k in master_keys}
        self._current = key_id(master_keys[0])
        # account references: one HMAC key per master key, the current one first
        self._account_keys = [hmac.new(k, _ACCOUNT_LABEL, hashlib.sha256).digest() for k in master_keys]

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        """Raises SettingsError when settings name no master key, or a bad one."""
        return cls(settings.master_keys())

    @property
    def key_id(self) -> str:
        """The id (hex) of the master key that seals: for logs, it reveals nothing of the key."""
        return self._current.hex()

    def seal(self, plaintext: bytes, purpose: bytes, owner: str) -> bytes:
        header = bytes([VERSION]) + self._current
        nonce = os.urandom(NONCE_LEN)
        return header + nonce + self._aead[self._current].encrypt(nonce, plaintext,
                                                                   header + purpose + owner.encode())

    def open(self, sealed: bytes, purpose: bytes, owner: str) -> bytes:
        sealed = bytes(sealed)
        header, kid = sealed[:HEADER_LEN], sealed[1:HEADER_LEN]
        if len(sealed) < HEADER_LEN + NONCE_LEN + TAG_LEN or sealed[0] != VERSION:
            raise SealError(f"{owner}: not a sealed value (version {sealed[:1].hex() or 'none'})",
                            f"{owner}：不是密封值（版本 {sealed[:1].hex() or '无'}）")
        aead = self._aead.get(kid)
        if aead is None:
            raise SealError(f"{owner}: sealed under master key {kid.hex()}, which is not in "
                            f"MCODE_CLOUD_MASTER_KEY (it has {', '.join(k.hex() for k in self._aead)})",
                            f"{owner}：由主密钥 {kid.hex()} 密封，但 MCODE_CLOUD_MASTER_KEY 中没有它"
                            f"（现有 {', '.join(k.hex() for k in self._aead)}）")
        nonce = sealed[HEADER_LEN:HEADER_LEN + NONCE_LEN]
        try:
            return aead.decrypt(nonce, sealed[HEADER_LEN + NONCE_LEN:], header + purpose + owner.encode())
        except InvalidTag:
            raise SealError(f"{owner}: the sealed value was altered or belongs to another row",
                            f"{owner}：密封值被改动，或属于另一行") from None

    def seal_device_key(self, device_id: str, key: bytes) -> bytes:
        return self.seal(key, DEVICE_KEY_PURPOSE, device_id)

    def open_device_key(self, device_id: str, sealed: bytes) -> bytes:
        return self.open(sealed, DEVICE_KEY_PURPOSE, device_id)

    def account_refs(self, digest: bytes) -> list[str]:
        """HMAC-SHA256 (hex) of an account reference's SHA-256 under each master key's account key,
        the current one first: a reference keyed before a master key change is still found."""
        return [hmac.new(k, digest, hashlib.sha256).hexdigest() for k in self._account_keys]


def bind(sf: SessionFactory, vault: Vault) -> SessionFactory:
    """Every session `sf` makes from now on carries `vault` (Session.info)."""
    sf.configure(info={_INFO: vault})
    return sf


def of(s: Session) -> Vault:
    """The vault of the session's factory; a factory made without one is a programming error."""
    v = s.info.get(_INFO)
    if not isinstance(v, Vault):
        raise SettingsError("this session factory has no master key: build it with "
                            "cloud.store.vault.session_factory(engine, settings)",
                            "此会话工厂没有主密钥：请用 "
                            "cloud.store.vault.session_factory(engine, settings) 创建")
    return v


def session_factory(engine: Engine, settings: Settings) -> SessionFactory:
    """The session factory of a running cloud, its sessions carrying the vault of the settings'
    master keys. Raises SettingsError (a clear message, zh and en) for settings the cloud must
    not run with: no master key, a bad one, a short admin key."""
    settings.check()
    return bind(make_session_factory(engine), Vault.from_settings(settings))


def check_opens(sf: SessionFactory) -> None:
    """Open one stored device key, so that a cloud started with the wrong master key stops at once
    with a clear message (SealError) rather than failing on every code and batch."""
    with sf() as s:
        if not inspect(s.get_bind()).has_table(Device.__tablename__):
            return
        row = s.execute(select(Device.id, Device.key_sealed).limit(1)).first()
        if row is not None:
            of(s).open_device_key(row[0], row[1])

"""The cloud's Ed25519 key that signs gateway configs (and, with the trust log, checkpoints):
kept in a PEM file, made on first use."""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

log = logging.getLogger(__name__)


def signing_key(path: str | Path) -> Ed25519PrivateKey:
    """The cloud's Ed25519 config key from a PEM file, made (mode 0600) if there is none yet."""
    p = Path(path)
    if p.exists():
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{p} is not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.touch(mode=0o600)
    tmp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    tmp.replace(p)
    log.info("made a new cloud config signing key in %s", p)
    return key


def public_hex(key: Ed25519PrivateKey) -> str:
    """What a gateway's gateway.toml carries as `cloud_public_key`."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()

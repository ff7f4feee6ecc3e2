"""Test helpers for the gateway: records from a made-up device, keys, configs."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.spool import Spool
from protocol import record
from protocol.hmac256 import HmacKey

GW_ID = bytes.fromhex("a1a2a3a4a5a6a7a8")
DEV_A = bytes.fromhex("0102030405060708")
DEV_B = bytes.fromhex("1112131415161718")
RECORD_KEY = HmacKey(b"r" * 32)


def rec(device_id: bytes, seq: int, epoch: int = 1) -> bytes:
    return record.make(RECORD_KEY, device_id, record.KIND_TAP, 0, epoch, seq, 1000 + seq,
                       seq.to_bytes(8, "big"))


def recs(device_id: bytes, seqs: range | list[int], epoch: int = 1) -> list[bytes]:
    return [rec(device_id, s, epoch) for s in seqs]


def open_spool(path: Path, key: Ed25519PrivateKey | None = None) -> Spool:
    return Spool(path, GW_ID, key or Ed25519PrivateKey.generate())

"""Gateway batches and cloud acks (CPython only: gateway and cloud share it, the device never sees a batch).

envelope = CBOR [1, body: bstr, sig: bstr(64)]
body     = CBOR {"gw": bstr(8), "bseq": uint <= 2^63-1, "ts": uint (unix ms) <= MAX_TS_MS,
            "recs": [[device_id bstr(8), record bstr(40)], ...]}
sig      = Ed25519(gateway private key, b"mcode/v0/batch" || body)

The signature covers the body's bytes as sent, so no canonical CBOR is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.errors import ReasonError
from protocol.record import RECORD_LEN

HOST_ONLY = True  # never shipped to a device (tools/build.py reads this)

ENVELOPE_VERSION = 1
SIG_CONTEXT = b"mcode/v0/batch"
MAX_RECORDS = 1000
MAX_BSEQ = 2**63 - 1  # bseq and ts fit SQLite's and PostgreSQL's BIGINT
MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z; ts is unsigned, so 0 is the lower bound

TOPIC_ROOT = "mcode/v0/gw"


def batch_topic(gateway_hex: str) -> str:
    return f"{TOPIC_ROOT}/{gateway_hex}/batch"


def ack_topic(gateway_hex: str) -> str:
    return f"{TOPIC_ROOT}/{gateway_hex}/ack"


def status_topic(gateway_hex: str) -> str:
    return f"{TOPIC_ROOT}/{gateway_hex}/status"


BATCH_SUBSCRIPTION = f"{TOPIC_ROOT}/+/batch"


class BatchError(ReasonError):
    """A batch that cannot be accepted; `reason` is a stable code for quarantine."""


@dataclass(frozen=True)
class Batch:
    gateway_id: bytes
    bseq: int
    ts_ms: int
    records: list[tuple[bytes, bytes]]


def encode_body(batch: Batch) -> bytes:
    return cbor2.dumps({"gw": batch.gateway_id, "bseq": batch.bseq, "ts": batch.ts_ms,
                        "recs": [[d, r] for d, r in batch.records]})


def largest_payload() -> int:
    """The wire size of the largest batch a gateway may send: MAX_RECORDS records and the largest
    bseq and ts (CBOR's lengths depend only on the values' sizes, never on the bytes)."""
    top = Batch(b"\xff" * 8, MAX_BSEQ, MAX_TS_MS, [(b"\xff" * 8, b"\xff" * RECORD_LEN)] * MAX_RECORDS)
    body = encode_body(top)
    return len(cbor2.dumps([ENVELOPE_VERSION, body, b"\xff" * 64]))


def sign(batch: Batch, key: Ed25519PrivateKey) -> bytes:
    body = encode_body(batch)
    return cbor2.dumps([ENVELOPE_VERSION, body, key.sign(SIG_CONTEXT + body)])


def open_envelope(payload: bytes) -> tuple[bytes, bytes, Batch]:
    """Decode without trusting: (body, sig, batch). Raises BatchError with a reason."""
    if len(payload) > MAX_PAYLOAD:
        raise BatchError("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD}")
    try:
        env = cbor2.loads(payload)
    except Exception as e:  # cbor2 raises several types on garbage
        raise BatchError("malformed_cbor", str(e)[:200]) from None
    if not (isinstance(env, list) and len(env) == 3 and env[0] == ENVELOPE_VERSION
            and isinstance(env[1], bytes) and isinstance(env[2], bytes)):
        raise BatchError("malformed_envelope")
    body, sig = env[1], env[2]
    try:
        m = cbor2.loads(body)
    except Exception as e:
        raise BatchError("malformed_cbor", str(e)[:200]) from None
    if not isinstance(m, dict):
        raise BatchError("malformed_body")
    gw, bseq, ts, recs = m.get("gw"), m.get("bseq"), m.get("ts"), m.get("recs")
    if not (isinstance(gw, bytes) and len(gw) == 8 and isinstance(bseq, int) and bseq >= 0
            and isinstance(ts, int) and isinstance(recs, list)):
        raise BatchError("malformed_body")
    if not (bseq <= MAX_BSEQ and 0 <= ts <= MAX_TS_MS):  # ts = -2^64 once reached the database
        raise BatchError("malformed_body", f"bseq {bseq} or ts {ts} out of range"[:200])
    if len(recs) > MAX_RECORDS:
        raise BatchError("oversized", f"{len(recs)} records > {MAX_RECORDS}")
    out: list[tuple[bytes, bytes]] = []
    for item in recs:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], bytes)
                and len(item[0]) == 8 and isinstance(item[1], bytes) and len(item[1]) == RECORD_LEN):
            raise BatchError("malformed_record")
        out.append((item[0], item[1]))
    return body, sig, Batch(gw, bseq, ts, out)


MAX_PAYLOAD = largest_payload()  # bytes on the wire (52,118); the cloud quarantines anything larger


def verify(body: bytes, sig: bytes, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(sig, SIG_CONTEXT + body)
    except InvalidSignature:
        return False
    return True


# Ack from the cloud to a gateway, published after the cloud's commit.
ACK_STORED = "stored"  # good records stored now or before; bad ones quarantined (see "rej", "reason")
ACK_QUARANTINED = "quarantined"  # the batch itself was refused and kept with its reason


def encode_ack(bseq: int, status: str, stored: int = 0, duplicates: int = 0, rejected: int = 0,
               reason: str = "") -> bytes:
    return cbor2.dumps({"bseq": bseq, "status": status, "stored": stored, "dup": duplicates,
                        "rej": rejected, "reason": reason})


def decode_ack(payload: bytes) -> dict:
    m = cbor2.loads(payload)
    if not isinstance(m, dict) or not isinstance(m.get("bseq"), int):
        raise ValueError("malformed ack")
    return m

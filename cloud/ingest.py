"""Batch ingest core: verify a gateway batch, store its good records once, quarantine the rest, and
return the ack to publish (after the commit). No MQTT here; see cloud.worker for the transport."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud.db import SessionFactory, insert_ignore, now_ms
from cloud.models import BatchRow, Device, Event, Gateway, Quarantine
from protocol import batch as pb
from protocol import record as pr
from protocol.hmac256 import HmacKey
from protocol.keys import record_key

log = logging.getLogger("mcode.cloud.ingest")

_TOPIC = re.compile(r"^" + re.escape(pb.TOPIC_ROOT) + r"/([0-9a-f]{16})/batch$")


@dataclass
class IngestResult:
    """What one delivery did; `ack` is None when no gateway can be named from the topic."""
    status: str  # stored | quarantined
    gateway_id: str | None
    bseq: int
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    reason: str = ""
    ack: bytes | None = None
    rejected_reasons: dict[str, int] = field(default_factory=dict)


def gateway_from_topic(topic: str) -> str | None:
    m = _TOPIC.match(topic)
    return m.group(1) if m else None


def _peek_bseq(payload: bytes) -> int:
    """Best effort: the bseq of a batch that failed to open, so its ack can still name it; -1 if
    none can be read (the gateway cannot match such an ack, but it is a sign of life)."""
    if len(payload) > pb.MAX_PAYLOAD:
        return -1
    try:
        env = cbor2.loads(payload)
        body = cbor2.loads(env[1])
        bseq = body["bseq"]
        return bseq if isinstance(bseq, int) and bseq >= 0 else -1
    except Exception:
        return -1


def _quarantine(session: Session, reason: str, detail: str, gateway_id: str | None, topic: str,
                payload: bytes) -> None:
    digest = hashlib.sha256(reason.encode() + b"\0" + topic.encode() + b"\0" + payload).hexdigest()
    if len(payload) > pb.MAX_PAYLOAD:  # keep the head of an oversized payload, and its length
        detail = f"{detail}; kept the first {pb.MAX_PAYLOAD} of {len(payload)} bytes"
        payload = payload[:pb.MAX_PAYLOAD]
    insert_ignore(session, Quarantine.__table__, [{  # type: ignore[arg-type]
        "digest": digest, "reason": reason, "detail": detail[:2000], "gateway_id": gateway_id,
        "topic": topic[:300], "payload": payload, "created_at_ms": now_ms()}], ["digest"])


def _refuse(session_factory: SessionFactory, topic: str, payload: bytes, topic_gw: str | None,
            err: pb.BatchError, bseq: int) -> IngestResult:
    with session_factory.begin() as s:
        _quarantine(s, err.reason, err.detail, topic_gw, topic, payload)
    ack = pb.encode_ack(bseq, pb.ACK_QUARANTINED, reason=err.reason) if topic_gw else None
    return IngestResult(pb.ACK_QUARANTINED, topic_gw, bseq, reason=err.reason, ack=ack)


def ingest_batch(session_factory: SessionFactory, topic: str, payload: bytes) -> bytes | None:
    """The ack to publish on `protocol.batch.ack_topic(gw)` after this call (it has committed), or
    None when the topic names no gateway."""
    return ingest(session_factory, topic, payload).ack


def ingest(session_factory: SessionFactory, topic: str, payload: bytes) -> IngestResult:
    """Verify and store one delivered batch; commit before returning. Never raises on bad input:
    every refusal is a quarantine row and a result (a database failure does raise, and then
    nothing is acked, so the gateway resends)."""
    topic_gw = gateway_from_topic(topic)
    if topic_gw is None:
        return _refuse(session_factory, topic, payload, None,
                       pb.BatchError("bad_topic", topic[:200]), -1)
    try:
        body, sig, batch = pb.open_envelope(payload)
    except pb.BatchError as e:
        return _refuse(session_factory, topic, payload, topic_gw, e, _peek_bseq(payload))
    gw_hex = batch.gateway_id.hex()
    if gw_hex != topic_gw:
        return _refuse(session_factory, topic, payload, topic_gw,
                       pb.BatchError("topic_mismatch", f"body gw {gw_hex}"), batch.bseq)
    with session_factory() as s:
        gw = s.get(Gateway, gw_hex)
        pub = gw.public_key if gw is not None else None
    if pub is None:
        return _refuse(session_factory, topic, payload, topic_gw,
                       pb.BatchError("unknown_gateway", gw_hex), batch.bseq)
    try:
        good_sig = pb.verify(body, sig, Ed25519PublicKey.from_public_bytes(pub))
    except ValueError:
        good_sig = False
    if not good_sig:
        return _refuse(session_factory, topic, payload, topic_gw,
                       pb.BatchError("bad_signature", f"bseq {batch.bseq}"), batch.bseq)
    return _store(session_factory, topic, gw_hex, batch)


def _store(session_factory: SessionFactory, topic: str, gw_hex: str, batch: pb.Batch) -> IngestResult:
    res = IngestResult(pb.ACK_STORED, gw_hex, batch.bseq)
    t = now_ms()
    with session_factory.begin() as s:
        ids = sorted({d.hex() for d, _ in batch.records})
        keys: dict[str, HmacKey] = {}
        if ids:
            for dev_id, dev_key in s.execute(select(Device.id, Device.device_key).where(Device.id.in_(ids))):
                keys[dev_id] = HmacKey(record_key(dev_key))
        rows: dict[tuple[str, int, int], dict[str, Any]] = {}
        for dev, rec in batch.records:
            dev_hex = dev.hex()
            reason = ""
            fields: tuple[int, ...] = ()
            key = keys.get(dev_hex)
            if key is None:
                reason = "unknown_device"
            elif not pr.verify(key, dev, rec):
                reason = "bad_mac"
            else:
                try:
                    fields = pr.unpack(rec)
                except ValueError:
                    reason = "malformed_record"
            if reason:
                res.rejected += 1
                res.rejected_reasons[reason] = res.rejected_reasons.get(reason, 0) + 1
                _quarantine(s, reason, f"device {dev_hex} gw {gw_hex} bseq {batch.bseq}", gw_hex, topic,
                            dev + rec)
                continue
            _, kind, flags, epoch, seq, time_, data = fields
            rows[(dev_hex, epoch, seq)] = {
                "device_id": dev_hex, "epoch": epoch, "seq": seq, "kind": kind, "flags": flags,
                "time": time_, "data": data, "raw": rec, "gateway_id": gw_hex, "bseq": batch.bseq,
                "received_at_ms": t}
        inserted = insert_ignore(s, Event.__table__, list(rows.values()),  # type: ignore[arg-type]
                                 ["device_id", "epoch", "seq"], returning=["id"])
        res.stored = len(inserted)
        res.duplicates = len(batch.records) - res.rejected - res.stored
        res.reason = ",".join(sorted(res.rejected_reasons))
        status = "partial" if res.rejected else "stored"
        new = insert_ignore(s, BatchRow.__table__, [{  # type: ignore[arg-type]
            "gateway_id": gw_hex, "bseq": batch.bseq, "status": status, "records": len(batch.records),
            "stored": res.stored, "duplicates": res.duplicates, "rejected": res.rejected,
            "deliveries": 1, "ts_ms": batch.ts_ms, "received_at_ms": t}], ["gateway_id", "bseq"],
            returning=["id"])
        if not new:
            s.execute(update(BatchRow).where(BatchRow.gateway_id == gw_hex, BatchRow.bseq == batch.bseq)
                      .values(deliveries=BatchRow.deliveries + 1))
    # Committed. Records refused one by one are in quarantine, so the batch as a whole is done:
    # "stored" with a rejected count and reasons tells the gateway to stop resending it.
    res.ack = pb.encode_ack(batch.bseq, pb.ACK_STORED, res.stored, res.duplicates, res.rejected,
                            res.reason)
    return res

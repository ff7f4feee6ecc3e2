"""Batch ingest core: verify gateway batches, store their good records once, quarantine the rest,
and return the acks to publish after the commit. No MQTT here; see cloud.mqtt.worker for the transport.

`Ingestor.ingest_many` takes several deliveries in one transaction: on SQLite a commit costs more
than a batch's rows, so a worker with a backlog commits once for all it has in hand. Every delivery
still gets its own result and ack, and storage is idempotent on (device_id, epoch, seq), so any
delivery may be ingested again (a redelivery, or two workers racing) without counting twice."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Dialect, Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.store.engine import SessionFactory, insert_ignore, now_ms
from cloud.store.models import BatchRow, Device, Event, Gateway, Quarantine
from protocol import batch as pbatch
from protocol import record
from protocol.hmac256 import HmacKey
from protocol.keys import record_key

log = logging.getLogger(__name__)

_TOPIC = re.compile(r"^" + re.escape(pbatch.TOPIC_ROOT) + r"/([0-9a-f]{16})/batch$")
_MAX_I64 = 2**63 - 1  # BIGINT columns: a signed batch with a larger bseq or ts is refused, not crashed on
EVENT_COLUMNS = ("device_id", "epoch", "seq", "kind", "flags", "time", "data", "raw", "gateway_id", "bseq",
                 "received_at_ms")
_IN_CHUNK = 500  # ids per IN (...) query: well under SQLite's bound-parameter limit
_MAX_CACHED_KEYS = 100_000  # derived keys kept; past this the cache starts again (it is only a cache)


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


@dataclass
class _Opened:
    topic: str
    gw: str
    body: bytes
    sig: bytes
    batch: pbatch.Batch
    payload: bytes


@dataclass
class _Refused:
    topic: str
    gw: str | None
    err: pbatch.BatchError
    bseq: int
    payload: bytes


def gateway_from_topic(topic: str) -> str | None:
    m = _TOPIC.match(topic)
    return m.group(1) if m else None


def _peek_bseq(payload: bytes) -> int:
    """Best effort: the bseq of a batch that failed to open, so its ack can still name it; -1 if
    none can be read (the gateway cannot match such an ack, but it is a sign of life)."""
    if len(payload) > pbatch.MAX_PAYLOAD:
        return -1
    try:
        env = cbor2.loads(payload)
        body = cbor2.loads(env[1])
        bseq = body["bseq"]
        return bseq if isinstance(bseq, int) and bseq >= 0 else -1
    except Exception:
        return -1


def _open(topic: str, payload: bytes) -> _Opened | _Refused:
    """Everything that needs no database: topic, envelope, body, ranges."""
    gw = gateway_from_topic(topic)
    if gw is None:
        return _Refused(topic, None, pbatch.BatchError("bad_topic", topic[:200]), -1, payload)
    try:
        body, sig, batch = pbatch.open_envelope(payload)
    except pbatch.BatchError as e:
        return _Refused(topic, gw, e, _peek_bseq(payload), payload)
    if batch.bseq > _MAX_I64 or batch.ts_ms > _MAX_I64:
        return _Refused(topic, gw, pbatch.BatchError("malformed_body", "bseq or ts above 2^63-1"), batch.bseq,
                        payload)
    if batch.gateway_id.hex() != gw:
        return _Refused(topic, gw, pbatch.BatchError("topic_mismatch", f"body gw {batch.gateway_id.hex()}"),
                        batch.bseq, payload)
    return _Opened(topic, gw, body, sig, batch, payload)


def _quarantine(session: Session, reason: str, detail: str, gateway_id: str | None, topic: str,
                payload: bytes) -> None:
    digest = hashlib.sha256(reason.encode() + b"\0" + topic.encode() + b"\0" + payload).hexdigest()
    if len(payload) > pbatch.MAX_PAYLOAD:  # keep the head of an oversized payload, and its length
        detail = f"{detail}; kept the first {pbatch.MAX_PAYLOAD} of {len(payload)} bytes"
        payload = payload[:pbatch.MAX_PAYLOAD]
    insert_ignore(session, Quarantine.__table__, [{  # type: ignore[arg-type]
        "digest": digest, "reason": reason, "detail": detail[:2000], "gateway_id": gateway_id,
        "topic": topic[:300], "payload": payload, "created_at_ms": now_ms()}], ["digest"])


def _events_sql(dialect: Dialect) -> str:
    """INSERT .. ON CONFLICT DO NOTHING for the DB-API's executemany. Written out rather than built
    by SQLAlchemy because SQLAlchemy's per-row parameter handling cost more than the insert itself;
    the cursor's rowcount then says how many rows were new (sqlite3 and psycopg 3 both sum it)."""
    if dialect.paramstyle == "qmark":
        ph = "?"
    elif dialect.paramstyle in ("format", "pyformat"):
        ph = "%s"
    else:
        raise RuntimeError(f"ingest: unsupported paramstyle {dialect.paramstyle}")
    q = dialect.identifier_preparer
    cols = ", ".join(q.quote(c) for c in EVENT_COLUMNS)
    key = ", ".join(q.quote(c) for c in ("device_id", "epoch", "seq"))
    return (f"INSERT INTO {q.format_table(Event.__table__)} ({cols}) "  # type: ignore[arg-type]
            f"VALUES ({', '.join([ph] * len(EVENT_COLUMNS))}) ON CONFLICT ({key}) DO NOTHING")


def _batches_upsert(dialect: Dialect) -> Insert:
    """One row per (gateway, bseq): the first delivery's figures; later deliveries count up."""
    key, again = ["gateway_id", "bseq"], {"deliveries": BatchRow.deliveries + 1}
    if dialect.name == "sqlite":
        return sqlite.insert(BatchRow).on_conflict_do_update(index_elements=key, set_=again)
    if dialect.name == "postgresql":
        return postgresql.insert(BatchRow).on_conflict_do_update(index_elements=key, set_=again)
    raise RuntimeError(f"ingest: unsupported dialect {dialect.name}")


class Ingestor:
    """Ingests deliveries for one worker thread (not thread-safe). Keeps the keys it has derived
    (record keys with their HMAC pads, parsed gateway public keys), keyed by the key bytes read from
    the database on every call, so a changed or removed key takes effect at once."""

    def __init__(self, session_factory: SessionFactory) -> None:
        self._sf = session_factory
        self._record_keys: dict[bytes, HmacKey] = {}
        self._gateway_keys: dict[bytes, Ed25519PublicKey | None] = {}
        self._sql: tuple[str, Insert] | None = None

    def ingest(self, topic: str, payload: bytes) -> IngestResult:
        return self.ingest_many([(topic, payload)])[0]

    def ingest_many(self, deliveries: Sequence[tuple[str, bytes]]) -> list[IngestResult]:
        """Verify and store deliveries (topic, payload) in one transaction; commit before returning
        their results, in order. Never raises on bad input: every refusal is a quarantine row and a
        result. A database failure raises and nothing is committed (the caller may retry all)."""
        items = [_open(t, p) for t, p in deliveries]
        t = now_ms()
        results: list[IngestResult] = []
        with self._sf.begin() as s:
            # Reads first: on SQLite the write transaction then begins at the first INSERT, so a
            # second worker process only ever waits for the lock (busy_timeout), never conflicts.
            self._check_signatures(s, items)
            keys = self._device_keys(s, items)
            events_sql, batches_upsert = self._statements(s)
            batch_rows: list[dict[str, Any]] = []
            for it in items:
                if isinstance(it, _Refused):
                    _quarantine(s, it.err.reason, it.err.detail, it.gw, it.topic, it.payload)
                    results.append(IngestResult(pbatch.ACK_QUARANTINED, it.gw, it.bseq, reason=it.err.reason))
                else:
                    res = self._store(s, it, keys, t, events_sql)
                    results.append(res)
                    b = it.batch
                    batch_rows.append({
                        "gateway_id": it.gw, "bseq": b.bseq,
                        "status": "partial" if res.rejected else "stored",
                        "records": len(b.records), "stored": res.stored, "duplicates": res.duplicates,
                        "rejected": res.rejected, "deliveries": 1, "ts_ms": b.ts_ms, "received_at_ms": t})
            if batch_rows:  # in key order: concurrent workers then take row locks in the same order
                s.execute(batches_upsert, sorted(batch_rows, key=lambda r: (r["gateway_id"], r["bseq"])))
        # Committed. Records refused one by one are in quarantine, so such a batch as a whole is done:
        # "stored" with a rejected count and reasons tells the gateway to stop resending it.
        for res in results:
            if res.gateway_id is not None:
                res.ack = pbatch.encode_ack(res.bseq, res.status, res.stored, res.duplicates, res.rejected,
                                        res.reason)
        return results

    def quarantine_failure(self, topic: str, payload: bytes, err: Exception) -> IngestResult:
        """Keep a delivery whose ingest raised something other than a database outage (a bug, or
        input this code did not foresee) in quarantine as `internal_error`, so it cannot stall the
        worker; its payload stays there to be ingested again once fixed."""
        gw = gateway_from_topic(topic)
        bseq = _peek_bseq(payload)
        with self._sf.begin() as s:
            _quarantine(s, "internal_error", f"{type(err).__name__}: {err}"[:500], gw, topic, payload)
        ack = pbatch.encode_ack(bseq, pbatch.ACK_QUARANTINED, reason="internal_error") if gw else None
        return IngestResult(pbatch.ACK_QUARANTINED, gw, bseq, reason="internal_error", ack=ack)

    def _statements(self, s: Session) -> tuple[str, Insert]:
        if self._sql is None:
            dialect = s.get_bind().dialect
            self._sql = _events_sql(dialect), _batches_upsert(dialect)
        return self._sql

    def _check_signatures(self, s: Session, items: list[_Opened | _Refused]) -> None:
        gws = sorted({it.gw for it in items if isinstance(it, _Opened)})
        if not gws:
            return
        pubs: dict[str, bytes] = {gid: bytes(pub) for gid, pub in s.execute(
            select(Gateway.id, Gateway.public_key).where(Gateway.id.in_(gws)))}
        for i, it in enumerate(items):
            if not isinstance(it, _Opened):
                continue
            raw = pubs.get(it.gw)
            if raw is None:
                items[i] = _Refused(it.topic, it.gw, pbatch.BatchError("unknown_gateway", it.gw),
                                    it.batch.bseq,
                                    it.payload)
            elif not self._verify(raw, it.body, it.sig):
                items[i] = _Refused(it.topic, it.gw,
                                    pbatch.BatchError("bad_signature", f"bseq {it.batch.bseq}"),
                                    it.batch.bseq, it.payload)

    def _verify(self, raw: bytes, body: bytes, sig: bytes) -> bool:
        if raw not in self._gateway_keys:
            if len(self._gateway_keys) >= _MAX_CACHED_KEYS:
                self._gateway_keys.clear()
            try:
                self._gateway_keys[raw] = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError:
                self._gateway_keys[raw] = None
        key = self._gateway_keys[raw]
        return key is not None and pbatch.verify(body, sig, key)

    def _device_keys(self, s: Session, items: list[_Opened | _Refused]) -> dict[str, HmacKey]:
        ids = sorted({d.hex() for it in items if isinstance(it, _Opened) for d, _ in it.batch.records})
        out: dict[str, HmacKey] = {}
        for i in range(0, len(ids), _IN_CHUNK):
            for dev_id, dev_key in s.execute(select(Device.id, Device.device_key)
                                             .where(Device.id.in_(ids[i:i + _IN_CHUNK]))):
                raw = bytes(dev_key)
                k = self._record_keys.get(raw)
                if k is None:
                    if len(self._record_keys) >= _MAX_CACHED_KEYS:
                        self._record_keys.clear()
                    k = self._record_keys[raw] = HmacKey(record_key(raw))
                out[dev_id] = k
        return out

    def _store(self, s: Session, it: _Opened, keys: dict[str, HmacKey], t: int,
               events_sql: str) -> IngestResult:
        batch = it.batch
        res = IngestResult(pbatch.ACK_STORED, it.gw, batch.bseq)
        rows: list[tuple[Any, ...]] = []
        seen: set[tuple[str, int, int]] = set()
        body_len, tag_len = record.BODY_LEN, record.TAG_LEN
        for dev, rec in batch.records:
            dev_hex = dev.hex()
            key = keys.get(dev_hex)
            reason = ""
            if key is None:
                reason = "unknown_device"
            elif not hmac.compare_digest(key.mac(dev, rec[:body_len])[:tag_len], rec[body_len:]):
                reason = "bad_mac"
            else:
                try:
                    _, kind, flags, epoch, seq, time_, data = record.unpack(rec)
                except ValueError:
                    reason = "malformed_record"
            if reason:
                res.rejected += 1
                res.rejected_reasons[reason] = res.rejected_reasons.get(reason, 0) + 1
                _quarantine(s, reason, f"device {dev_hex} gw {it.gw} bseq {batch.bseq}", it.gw, it.topic,
                            dev + rec)
                continue
            k = (dev_hex, epoch, seq)
            if k not in seen:  # the same record twice in one batch is a duplicate, as across batches
                seen.add(k)
                rows.append((dev_hex, epoch, seq, kind, flags, time_, data, rec, it.gw, batch.bseq, t))
        if rows:
            res.stored = s.connection().exec_driver_sql(events_sql, rows).rowcount  # type: ignore[arg-type]
        res.duplicates = len(batch.records) - res.rejected - res.stored
        res.reason = ",".join(sorted(res.rejected_reasons))
        return res


def ingest(session_factory: SessionFactory, topic: str, payload: bytes) -> IngestResult:
    """Verify and store one delivered batch; commit before returning (see Ingestor.ingest_many)."""
    return Ingestor(session_factory).ingest(topic, payload)


def ingest_batch(session_factory: SessionFactory, topic: str, payload: bytes) -> bytes | None:
    """The ack to publish on `protocol.batch.ack_topic(gw)` after this call (it has committed), or
    None when the topic names no gateway."""
    return ingest(session_factory, topic, payload).ack

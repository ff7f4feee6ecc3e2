"""Batch ingest core: verify gateway batches, store their good records once, quarantine the rest,
and return the acks to publish after the commit. No MQTT here; see cloud.mqtt.worker for the transport.

`Ingestor.ingest_many` takes several deliveries in one transaction: on SQLite a commit costs more
than a batch's rows, so a worker with a backlog commits once for all it has in hand. Every delivery
still gets its own result and ack, and storage is idempotent on (device_id, epoch, seq), so any
delivery may be ingested again (a redelivery, or two workers racing) without counting twice.

On PostgreSQL the good records of all those deliveries go in by COPY into a temporary table and one
INSERT .. SELECT .. ON CONFLICT DO NOTHING (`_copy_events`); elsewhere by the DB-API's executemany,
one statement per delivery. Either way each delivery learns how many of its records were new.

Trust (docs/security.md, "Broker identities and ingest"): a revoked gateway's batches are
quarantined as `gateway_revoked`; after a key rotation the previous key verifies only what was in
flight (received before the grace deadline, bseq below the rotation point when one was given); a
gateway of a merchant may forward only that merchant's devices (else `foreign_device`); and the
quarantine keeps at most `QuarantineQuota` per gateway, counting what it turns away in
`quarantine_drops` (and the log), never silently."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Dialect, Insert, func, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.services import tlog
from cloud.store import vault
from cloud.store.engine import SessionFactory, insert_ignore, now_ms
from cloud.store.models import BatchRow, Campaign, Device, Event, Gateway, Quarantine, QuarantineDrop
from protocol import batch as pbatch
from protocol import record
from protocol.hmac256 import HmacKey
from protocol.keys import record_key

log = logging.getLogger(__name__)

_TOPIC = re.compile(r"^" + re.escape(pbatch.TOPIC_ROOT) + r"/([0-9a-f]{16})/batch$")
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
    dropped: int = 0  # refusals the quarantine quota turned away (counted in quarantine_drops)


@dataclass(frozen=True)
class QuarantineQuota:
    """What the quarantine keeps per gateway at most (refusals naming no gateway share one quota);
    beyond it a refusal is still refused and acked, but only counted and logged, not kept."""
    bytes: int = 1024 * 1024
    rows: int = 10_000


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
    if batch.gateway_id.hex() != gw:
        return _Refused(topic, gw, pbatch.BatchError("topic_mismatch", f"body gw {batch.gateway_id.hex()}"),
                        batch.bseq, payload)
    return _Opened(topic, gw, body, sig, batch, payload)


class _Quarantine:
    """Quarantine rows of one transaction, within each gateway's quota. Usage is read from the
    quarantine table itself (so rows an operator deletes free their quota) once per gateway and
    transaction; two workers filling one gateway's quota at once may overshoot it by what they
    hold in hand (at most 50 deliveries each). Drops are added to quarantine_drops at `close`."""

    def __init__(self, session: Session, quota: QuarantineQuota, t: int) -> None:
        self._s, self._quota, self._t = session, quota, t
        self._used: dict[str, list[int]] = {}  # gateway ("" for none) -> [rows, bytes]
        self._drops: dict[str, list[Any]] = {}  # gateway -> [rows, bytes, last reason]

    def _usage(self, key: str) -> list[int]:
        if key not in self._used:
            col = Quarantine.gateway_id
            q = select(func.count(), func.coalesce(func.sum(func.length(Quarantine.payload)), 0))
            rows, size = self._s.execute(q.where(col == key if key else col.is_(None))).one()
            self._used[key] = [int(rows), int(size)]
        return self._used[key]

    def put(self, reason: str, detail: str, gateway_id: str | None, topic: str, payload: bytes) -> bool:
        """Keep one refusal; False if the quota turned it away (it is counted and logged)."""
        digest = hashlib.sha256(reason.encode() + b"\0" + topic.encode() + b"\0" + payload).hexdigest()
        if len(payload) > pbatch.MAX_PAYLOAD:  # keep the head of an oversized payload, and its length
            detail = f"{detail}; kept the first {pbatch.MAX_PAYLOAD} of {len(payload)} bytes"
            payload = payload[:pbatch.MAX_PAYLOAD]
        key = gateway_id or ""
        used = self._usage(key)
        if used[0] + 1 > self._quota.rows or used[1] + len(payload) > self._quota.bytes:
            drop = self._drops.setdefault(key, [0, 0, reason])
            drop[0] += 1
            drop[1] += len(payload)
            drop[2] = reason
            log.warning("quarantine quota of gateway %s full (%d rows, %d bytes): dropped a %s of %d bytes",
                        key or "-", used[0], used[1], reason, len(payload))
            return False
        if insert_ignore(self._s, Quarantine.__table__, [{  # type: ignore[arg-type]
                "digest": digest, "reason": reason, "detail": detail[:2000], "gateway_id": gateway_id,
                "topic": topic[:300], "payload": payload, "created_at_ms": self._t}], ["digest"], ["id"]):
            used[0] += 1
            used[1] += len(payload)
        return True

    def close(self) -> None:
        for key, (rows, size, reason) in sorted(self._drops.items()):
            insert_ignore(self._s, QuarantineDrop.__table__, [{  # type: ignore[arg-type]
                "gateway_id": key, "rows": 0, "bytes": 0, "last_reason": reason, "last_at_ms": self._t}],
                ["gateway_id"])
            self._s.execute(update(QuarantineDrop).where(QuarantineDrop.gateway_id == key).values(
                rows=QuarantineDrop.rows + rows, bytes=QuarantineDrop.bytes + size, last_reason=reason,
                last_at_ms=self._t))


def quarantine_drops(sf: SessionFactory) -> dict[str, dict[str, Any]]:
    """Per gateway ("" for refusals naming none), what the quarantine quota turned away."""
    with sf() as s:
        return {d.gateway_id: {"rows": d.rows, "bytes": d.bytes, "last_reason": d.last_reason,
                               "last_at_ms": d.last_at_ms} for d in s.scalars(select(QuarantineDrop))}


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


_STAGE = "mcode_ingest_stage"  # a temporary table, one per database session, emptied at each commit
_STAGE_TYPES = ("text", "int8", "int8", "int2", "int4", "int8", "bytea", "bytea", "text", "int8",
                "int8")  # EVENT_COLUMNS: COPY's binary format needs them spelt out
_EVENT_KEY = itemgetter(0, 1, 2)  # (device_id, epoch, seq) of a row in EVENT_COLUMNS order


def _copy_sql(dialect: Dialect) -> tuple[str, str, str]:
    """The temporary table, the COPY into it, and the INSERT .. SELECT that moves its new rows into
    events and says, per (gateway, bseq), how many were new."""
    q = dialect.identifier_preparer
    cols = ", ".join(q.quote(c) for c in EVENT_COLUMNS)
    key = ", ".join(q.quote(c) for c in ("device_id", "epoch", "seq"))
    typed = ", ".join(f"{q.quote(c)} {t}" for c, t in zip(EVENT_COLUMNS, _STAGE_TYPES, strict=True))
    events = q.format_table(Event.__table__)  # type: ignore[arg-type]
    return (f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} ({typed}) ON COMMIT DELETE ROWS",
            f"COPY {_STAGE} ({cols}) FROM STDIN (FORMAT BINARY)",
            f"WITH new AS (INSERT INTO {events} ({cols}) SELECT {cols} FROM {_STAGE} "
            f"ON CONFLICT ({key}) DO NOTHING RETURNING gateway_id, bseq) "
            f"SELECT gateway_id, bseq, count(*) FROM new GROUP BY gateway_id, bseq")


def _copy_events(conn: Connection, sql: tuple[str, str, str],
                 deliveries: Sequence[Sequence[tuple[Any, ...]]]) -> dict[tuple[str, int], int]:
    """COPY the deliveries' rows (EVENT_COLUMNS) into the stage and insert what is new; returns the
    new rows per (gateway_id, bseq). A record in two deliveries of one transaction is staged once,
    for the first (so it counts for that one), and rows are staged in key order, which a freshly
    emptied temporary table gives back as written: two workers inserting overlapping records lock
    them in one order (a deadlock all the same would be retried). Runs on the session's own psycopg
    connection, inside its transaction; psycopg's errors come out as SQLAlchemy's, so the worker
    tells a lost connection or a deadlock (retried) from a bug (quarantined)."""
    import psycopg  # only on PostgreSQL

    seen: set[tuple[str, int, int]] = set()
    staged = []
    for rows in deliveries:
        for r in rows:
            k = _EVENT_KEY(r)
            if k not in seen:
                seen.add(k)
                staged.append(r)
    staged.sort(key=_EVENT_KEY)
    create, copy, merge = sql
    conn.exec_driver_sql(create)
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cur:
            with cur.copy(copy) as cp:
                cp.set_types(_STAGE_TYPES)
                for r in staged:
                    cp.write_row(r)
    except psycopg.Error as e:
        raise sa_exc.DBAPIError.instance(copy, None, e, psycopg.Error, dialect=conn.dialect) from e
    return {(gw, bseq): n for gw, bseq, n in conn.exec_driver_sql(merge)}


def _devices_sql(dialect: Dialect, n: int) -> str:
    """The record key (sealed) and merchant of n devices by id, written out: SQLAlchemy building the
    join anew per transaction cost more than running it."""
    ph = "?" if dialect.paramstyle == "qmark" else "%s"
    q = dialect.identifier_preparer
    d, c = q.format_table(Device.__table__), q.format_table(Campaign.__table__)  # type: ignore[arg-type]
    return (f"SELECT {d}.id, {d}.key_sealed, {c}.merchant_id FROM {d} JOIN {c} ON {d}.campaign_id = {c}.id "
            f"WHERE {d}.id IN ({', '.join([ph] * n)})")


def _batches_upsert(dialect: Dialect) -> Insert:
    """One row per (gateway, bseq): the first delivery's figures; later deliveries count up."""
    key, again = ["gateway_id", "bseq"], {"deliveries": BatchRow.deliveries + 1}
    if dialect.name == "sqlite":
        return sqlite.insert(BatchRow).on_conflict_do_update(index_elements=key, set_=again)
    if dialect.name == "postgresql":
        return postgresql.insert(BatchRow).on_conflict_do_update(index_elements=key, set_=again)
    raise RuntimeError(f"ingest: unsupported dialect {dialect.name}")


def _in_flight(g: Gateway, bseq: int, t: int) -> bool:
    """Whether a rotated gateway's previous key may still sign this batch: received before the
    grace deadline and, if the rotation named one, below the first bseq of the new key."""
    return (g.prev_public_key is not None and g.prev_key_until_ms is not None and t < g.prev_key_until_ms
            and (g.prev_key_until_bseq is None or bseq < g.prev_key_until_bseq))


class Ingestor:
    """Ingests deliveries for one worker thread (not thread-safe). Keeps the keys it has derived
    (record keys with their HMAC pads, parsed gateway public keys), keyed by the key bytes read from
    the database on every call, so a changed or removed key takes effect at once."""

    def __init__(self, session_factory: SessionFactory, quota: QuarantineQuota | None = None,
                 clock_ms: Callable[[], int] = now_ms, copy: bool = True) -> None:
        self._sf = session_factory
        self._copy = copy  # False: executemany on PostgreSQL too (the path before COPY; benchmarks)
        self._quota = quota or QuarantineQuota()
        self._clock_ms = clock_ms
        # (device id, sealed root key) -> record key: the root key is opened once per device
        self._record_keys: dict[tuple[str, bytes], HmacKey] = {}
        self._gateway_keys: dict[bytes, Ed25519PublicKey | None] = {}
        self._sql: tuple[str, Insert] | None = None
        self._copy_sql: tuple[str, str, str] | None = None

    def ingest(self, topic: str, payload: bytes) -> IngestResult:
        return self.ingest_many([(topic, payload)])[0]

    def ingest_many(self, deliveries: Sequence[tuple[str, bytes]]) -> list[IngestResult]:
        """Verify and store deliveries (topic, payload) in one transaction; commit before returning
        their results, in order. Never raises on bad input: every refusal is a quarantine row and a
        result. A database failure raises and nothing is committed (the caller may retry all)."""
        items = [_open(t, p) for t, p in deliveries]
        t = self._clock_ms()
        results: list[IngestResult] = []
        with self._sf.begin() as s:
            # Reads first: on SQLite the write transaction then begins at the first INSERT, so a
            # second worker process only ever waits for the lock (busy_timeout), never conflicts.
            gateways = self._check_gateways(s, items, t)
            tenants = {gid: g.merchant_id for gid, g in gateways.items()}
            keys = self._device_keys(s, items)
            events_sql, batches_upsert = self._statements(s)
            book = _Quarantine(s, self._quota, t)
            batch_rows: list[dict[str, Any]] = []
            good: list[tuple[_Opened, IngestResult, list[tuple[Any, ...]]]] = []
            for it in items:
                if isinstance(it, _Refused):
                    kept = book.put(it.err.reason, it.err.detail, it.gw, it.topic, it.payload)
                    results.append(IngestResult(pbatch.ACK_QUARANTINED, it.gw, it.bseq, reason=it.err.reason,
                                                dropped=0 if kept else 1))
                else:
                    res, rows = self._check_records(it, keys, tenants.get(it.gw), book, t)
                    results.append(res)
                    good.append((it, res, rows))
            self._insert(s, good, events_sql)
            for it, res, _ in good:
                b = it.batch
                batch_rows.append({
                    "gateway_id": it.gw, "bseq": b.bseq,
                    "status": "partial" if res.rejected else "stored",
                    "records": len(b.records), "stored": res.stored, "duplicates": res.duplicates,
                    "rejected": res.rejected, "deliveries": 1, "ts_ms": b.ts_ms, "received_at_ms": t})
            if batch_rows:  # in key order: concurrent workers then take row locks in the same order
                s.execute(batches_upsert, sorted(batch_rows, key=lambda r: (r["gateway_id"], r["bseq"])))
            tlog.add_batches(s, [(i.gw, i.batch.bseq, i.payload) for i in items if isinstance(i, _Opened)], t,
                             {gid: bytes(g.public_key) for gid, g in gateways.items()})
            book.close()
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
            book = _Quarantine(s, self._quota, self._clock_ms())
            book.put("internal_error", f"{type(err).__name__}: {err}"[:500], gw, topic, payload)
            book.close()
        ack = pbatch.encode_ack(bseq, pbatch.ACK_QUARANTINED, reason="internal_error") if gw else None
        return IngestResult(pbatch.ACK_QUARANTINED, gw, bseq, reason="internal_error", ack=ack)

    def _statements(self, s: Session) -> tuple[str, Insert]:
        if self._sql is None:
            dialect = s.get_bind().dialect
            self._sql = _events_sql(dialect), _batches_upsert(dialect)
        return self._sql

    def _check_gateways(self, s: Session, items: list[_Opened | _Refused], t: int) -> dict[str, Gateway]:
        """Refuse, in place, batches of unknown or revoked gateways and bad signatures; returns the
        gateways named (a merchant_id of None: it may forward any tenant's devices)."""
        gws = sorted({it.gw for it in items if isinstance(it, _Opened)})
        if not gws:
            return {}
        rows = {g.id: g for g in s.scalars(select(Gateway).where(Gateway.id.in_(gws)))}
        for i, it in enumerate(items):
            if not isinstance(it, _Opened):
                continue
            g = rows.get(it.gw)
            reason = ""
            if g is None:
                reason, detail = "unknown_gateway", it.gw
            elif g.revoked_at_ms is not None:
                reason, detail = "gateway_revoked", f"revoked at {g.revoked_at_ms} ms; bseq {it.batch.bseq}"
            elif not self._verify(bytes(g.public_key), it.body, it.sig) and not (
                    _in_flight(g, it.batch.bseq, t) and self._verify(bytes(g.prev_public_key or b""), it.body,
                                                                     it.sig)):
                reason, detail = "bad_signature", f"bseq {it.batch.bseq}"
            if reason:
                items[i] = _Refused(it.topic, it.gw, pbatch.BatchError(reason, detail), it.batch.bseq,
                                    it.payload)
        return rows

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

    def _device_keys(self, s: Session, items: list[_Opened | _Refused]) -> dict[str, tuple[HmacKey, int]]:
        """Each named device's record key and merchant."""
        ids = sorted({d.hex() for it in items if isinstance(it, _Opened) for d, _ in it.batch.records})
        out: dict[str, tuple[HmacKey, int]] = {}
        conn = s.connection()
        for i in range(0, len(ids), _IN_CHUNK):
            part = ids[i:i + _IN_CHUNK]
            for dev_id, dev_key, merchant in conn.exec_driver_sql(_devices_sql(conn.dialect, len(part)),
                                                                  tuple(part)):
                cached = (dev_id, bytes(dev_key))
                k = self._record_keys.get(cached)
                if k is None:
                    if len(self._record_keys) >= _MAX_CACHED_KEYS:
                        self._record_keys.clear()
                    root = vault.of(s).open_device_key(dev_id, cached[1])
                    k = self._record_keys[cached] = HmacKey(record_key(root))
                out[dev_id] = (k, merchant)
        return out

    def _insert(self, s: Session, good: list[tuple[_Opened, IngestResult, list[tuple[Any, ...]]]],
                events_sql: str) -> None:
        """Store the checked rows of each delivery; set its stored and duplicates counts. Deliveries
        of one (gateway, bseq) in one transaction are the same signed batch: the first one gets
        what was new, the others are duplicates (as when they come in separate transactions)."""
        conn = s.connection()
        if self._copy and conn.dialect.name == "postgresql":
            if any(rows for _, _, rows in good):
                if self._copy_sql is None:
                    self._copy_sql = _copy_sql(conn.dialect)
                new = _copy_events(conn, self._copy_sql, [rows for _, _, rows in good])
                for it, res, _ in good:
                    res.stored = new.pop((it.gw, it.batch.bseq), 0)
        else:
            for _, res, rows in good:
                if rows:
                    res.stored = conn.exec_driver_sql(events_sql, rows).rowcount  # type: ignore[arg-type]
        for it, res, _ in good:
            res.duplicates = len(it.batch.records) - res.rejected - res.stored

    def _check_records(self, it: _Opened, keys: dict[str, tuple[HmacKey, int]], tenant: int | None,
                       book: _Quarantine, t: int) -> tuple[IngestResult, list[tuple[Any, ...]]]:
        """Each record's MAC, device and tenant; refusals go to quarantine one by one. Returns the
        delivery's result (stored and duplicates still to count) and its rows to store."""
        batch = it.batch
        res = IngestResult(pbatch.ACK_STORED, it.gw, batch.bseq)
        rows: list[tuple[Any, ...]] = []
        seen: set[tuple[str, int, int]] = set()
        body_len, tag_len = record.BODY_LEN, record.TAG_LEN
        for dev, rec in batch.records:
            dev_hex = dev.hex()
            key, merchant = keys.get(dev_hex, (None, None))
            reason = ""
            if key is None:
                reason = "unknown_device"
            elif tenant is not None and merchant != tenant:  # another merchant's device
                reason = "foreign_device"
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
                if not book.put(reason, f"device {dev_hex} gw {it.gw} bseq {batch.bseq}", it.gw, it.topic,
                                dev + rec):
                    res.dropped += 1
                continue
            k = (dev_hex, epoch, seq)
            if k not in seen:  # the same record twice in one batch is a duplicate, as across batches
                seen.add(k)
                rows.append((dev_hex, epoch, seq, kind, flags, time_, data, rec, it.gw, batch.bseq, t))
        res.reason = ",".join(sorted(res.rejected_reasons))
        return res, rows


def ingest(session_factory: SessionFactory, topic: str, payload: bytes) -> IngestResult:
    """Verify and store one delivered batch; commit before returning (see Ingestor.ingest_many)."""
    return Ingestor(session_factory).ingest(topic, payload)


def ingest_batch(session_factory: SessionFactory, topic: str, payload: bytes) -> bytes | None:
    """The ack to publish on `protocol.batch.ack_topic(gw)` after this call (it has committed), or
    None when the topic names no gateway."""
    return ingest(session_factory, topic, payload).ack

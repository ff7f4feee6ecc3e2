"""The gateway's durable spool: records pulled from devices, sealed signed batches, per-device cursors.

One SQLite file in WAL mode with synchronous=FULL: a commit survives power loss, so the
collector may ack a device only after `add_records` returns. Nothing here is ever wiped on
reconnect or restart; rows leave only through `confirm`, after the cloud acked its commit.

Invariant: every record ever added is exactly one of unbatched, in one pending batch, or
confirmed (deleted). Re-adding a record at or below the device's cursor is a no-op, so a
confirmed record can never be spooled, and so sent, twice.

Bounded: with `max_records` / `max_bytes` set, `add_records` stores only what fits (oldest seq
first) and the cursor stops there, so the session acks only that; the rest stays on the
device's own bounded log, which counts what it drops. Nothing spooled is ever deleted to make
room. Crossing `warn_fraction` of either limit logs a warning, reaching it an error; `fill()`
reports the level for `status`.

Every confirm is kept in a bounded log (`confirmed_batches()`) with the cloud's counts.

All methods are thread-safe (one connection behind a lock): paho callbacks, the asyncio loop
and worker threads may share one Spool.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.spool_limits import FULL, Fill, FillAlarm, Limits, measure
from protocol import batch as pbatch
from protocol import record as precord

log = logging.getLogger(__name__)

# Migrations: index i brings the schema from version i to i + 1. Append, never edit.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL,          -- 16 hex
        epoch INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        raw BLOB NOT NULL,                -- the 40-byte record as the device sent it
        received REAL NOT NULL,           -- unix seconds when spooled
        batch_id INTEGER NULL REFERENCES batches(bseq),
        UNIQUE (device_id, epoch, seq)
    );
    CREATE INDEX records_batch ON records(batch_id);
    CREATE TABLE batches (
        bseq INTEGER PRIMARY KEY,
        payload BLOB NOT NULL,            -- signed envelope, exactly as published
        n_records INTEGER NOT NULL,
        created REAL NOT NULL,
        published_at REAL NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE cursors (
        device_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,             -- highest seq ever spooled for the device
        updated REAL NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value);
    CREATE TABLE devices (
        device_id TEXT PRIMARY KEY,
        last_seen REAL, last_ok REAL, head_seq INTEGER, acked_seq INTEGER, epoch INTEGER,
        backlog INTEGER, failures INTEGER NOT NULL DEFAULT 0, last_error TEXT
    );
    """,
    # v2: the cloud's acks, kept after the batch leaves (bounded by Spool.keep_confirmed).
    """
    CREATE TABLE confirmed (
        bseq INTEGER PRIMARY KEY,
        n_records INTEGER NOT NULL,
        status TEXT NOT NULL,             -- the ack's status: stored / quarantined
        confirmed_at REAL NOT NULL,
        stored INTEGER NULL, dup INTEGER NULL, rej INTEGER NULL   -- the cloud's counts, if sent
    );
    """,
    # v3: the fleet view of each device (gateway.collector.DeviceState): RSSI of the last
    # advertisement (dBm), INFO's battery-low bit (0/1) and firmware version, the device's clock
    # minus the gateway's at the last TIME (ms), records it dropped unacked, seqs missing in what
    # was spooled. (No comments inside: ALTER TABLE pastes the column text into the schema.)
    """
    ALTER TABLE devices ADD COLUMN rssi INTEGER;
    ALTER TABLE devices ADD COLUMN battery_low INTEGER;
    ALTER TABLE devices ADD COLUMN fw INTEGER;
    ALTER TABLE devices ADD COLUMN clock_offset_ms INTEGER;
    ALTER TABLE devices ADD COLUMN dropped INTEGER;
    ALTER TABLE devices ADD COLUMN gaps INTEGER NOT NULL DEFAULT 0
    """,
]

DEVICE_FIELDS = ("last_seen", "last_ok", "head_seq", "acked_seq", "epoch", "backlog", "failures",
                 "last_error", "rssi", "battery_low", "fw", "clock_offset_ms", "dropped", "gaps")


@dataclass(frozen=True)
class PendingBatch:
    bseq: int
    payload: bytes
    n_records: int
    created: float
    published_at: float | None
    attempts: int


@dataclass(frozen=True)
class SpoolCounts:
    records: int
    unbatched: int
    batches: int
    unpublished: int
    batched_records: int
    oldest_unbatched: float | None  # unix seconds
    next_bseq: int


@dataclass(frozen=True)
class ConfirmedBatch:
    bseq: int
    n_records: int
    status: str
    confirmed_at: float
    stored: int | None
    dup: int | None
    rej: int | None


class SpoolSchemaError(RuntimeError):
    """The spool file was written by a newer gateway; opening it could lose data."""


class Spool:
    def __init__(self, path: str | Path, gateway_id: bytes | None = None,
                 key: Ed25519PrivateKey | None = None, clock: Any = time.time, *,
                 max_records: int | None = None, max_bytes: int | None = None,
                 warn_fraction: float = 0.8, keep_confirmed: int = 10_000,
                 create: bool = True) -> None:
        self.path = Path(path)
        self.gateway_id = gateway_id
        self._key = key
        self._clock = clock
        self._alarm = FillAlarm(Limits(max_records, max_bytes, warn_fraction))
        self.keep_confirmed = keep_confirmed
        if not create and not self.path.exists():
            raise FileNotFoundError(f"no spool at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                               timeout=10.0)
        # The plain connection: sqlite_utils.Database around it cost 5.6 MB of RSS in imports
        # (dateutil, pluggy, ...) for nothing the spool used (issue 17's 50 MB budget).
        self.db = conn
        self._lock = threading.RLock()
        self._closed = False
        with self._lock:
            self._exec("PRAGMA journal_mode=WAL")
            self._exec("PRAGMA synchronous=FULL")
            self._exec("PRAGMA foreign_keys=ON")
            self._exec("PRAGMA busy_timeout=10000")
            self._migrate()
            # Kept as rows come and go (add_records, confirm), so the fill check is O(1): a
            # count(*) per confirm cost 0.5 ms at 200k records and 3.6 ms at 800k. This process
            # is the spool's only writer; other processes (status) only read.
            self._n_records = int(self._exec("SELECT count(*) FROM records").fetchone()[0])
            self._n_confirmed = int(self._exec("SELECT count(*) FROM confirmed").fetchone()[0])
        self._note_fill()

    # -- plumbing -------------------------------------------------------------------------

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, tuple(params))

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction under the lock; committed (fsynced) on exit.

        durable=False commits without its own fsync (synchronous=NORMAL for this transaction
        only), for bookkeeping nothing depends on: the WAL keeps commit order, so the next
        durable commit's fsync makes it durable too, and a crash before that only loses it."""
        with self._lock:
            if self._closed:
                raise RuntimeError("spool is closed")
            conn = self.db
            if not durable:
                conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                if not durable:
                    self._restore_full_sync(conn)

    def _restore_full_sync(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA synchronous=FULL")
        except BaseException:
            # Never commit again without FULL: an ack given after such a commit could be lost.
            self._closed = True
            conn.close()
            raise

    def _migrate(self) -> None:
        with self._tx() as c:
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if row is None:
                c.execute("INSERT INTO schema_version VALUES (0)")
            if version > len(MIGRATIONS):
                raise SpoolSchemaError(
                    f"spool {self.path} has schema v{version}, newer than this gateway's "
                    f"v{len(MIGRATIONS)}: it was written by a newer mcode. Upgrade mcode; the "
                    f"file is left untouched (nothing in it is lost).")
            for i in range(version, len(MIGRATIONS)):
                for stmt in MIGRATIONS[i].split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute("UPDATE schema_version SET version = ?", (i + 1,))
            if 0 < version < len(MIGRATIONS):
                log.info("spool %s migrated from schema v%d to v%d", self.path, version,
                         len(MIGRATIONS))
            # bseq starts at creation time in ms, so a gateway whose spool was lost and
            # recreated never reuses a bseq the cloud has already seen.
            c.execute("INSERT OR IGNORE INTO meta VALUES ('next_bseq', ?)",
                      (int(self._clock() * 1000),))

    def schema_version(self) -> int:
        with self._lock:
            return int(self._exec("SELECT version FROM schema_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- records --------------------------------------------------------------------------

    def add_records(self, device_id: bytes, records: Iterable[bytes]) -> int:
        """Spool records from one device in one durable transaction; returns how many were new.

        Idempotent: a record already spooled, or at or below the device's cursor (already
        spooled and perhaps confirmed), is ignored. Raises ValueError on a malformed record
        before writing anything. At the size limit only the oldest records that fit are
        stored and the cursor stops at the last of them (so only those get acked)."""
        dev = device_id.hex()
        now = self._clock()
        rows = []
        for raw in records:
            f = precord.unpack(bytes(raw))
            rows.append((dev, f[3], f[4], bytes(raw), now))
        if not rows:
            return 0
        with self._tx() as c:
            cur = c.execute("SELECT seq FROM cursors WHERE device_id = ?", (dev,)).fetchone()
            floor = cur[0] if cur else -1
            fresh = sorted((r for r in rows if r[2] > floor), key=lambda r: r[2])
            if len(fresh) < len(rows):
                log.debug("device %s: %d records at or below cursor %d ignored", dev,
                          len(rows) - len(fresh), floor)
            room = measure(c, self.limits, self._n_records).room
            if room < len(fresh):
                log.error("SPOOL FULL: kept %d of %d new records from device %s; the rest stay "
                          "on the device", room, len(fresh), dev,
                          extra={"device": dev, "refused": len(fresh) - room})
                fresh = fresh[:room]
            before = c.total_changes
            c.executemany("INSERT OR IGNORE INTO records (device_id, epoch, seq, raw, received) "
                          "VALUES (?, ?, ?, ?, ?)", fresh)
            added = c.total_changes - before
            if fresh:
                top = max(r[2] for r in fresh)
                c.execute("INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT(device_id) DO UPDATE "
                          "SET seq = max(seq, excluded.seq), updated = excluded.updated",
                          (dev, top, now))
        self._n_records += added  # committed: the with block left without raising
        self._note_fill()
        return added

    def cursor(self, device_id: bytes) -> int | None:
        """Highest seq ever spooled for the device, or None if none yet."""
        with self._lock:
            row = self._exec("SELECT seq FROM cursors WHERE device_id = ?",
                             (device_id.hex(),)).fetchone()
        return None if row is None else int(row[0])

    def cursors(self) -> dict[str, int]:
        with self._lock:
            return {r[0]: int(r[1]) for r in self._exec("SELECT device_id, seq FROM cursors")}

    def backlog(self) -> dict[str, int]:
        """Records per device not yet confirmed by the cloud."""
        with self._lock:
            return {r[0]: int(r[1]) for r in
                    self._exec("SELECT device_id, count(*) FROM records GROUP BY device_id")}

    # -- size limit (gateway.spool_limits) -------------------------------------------------

    @property
    def limits(self) -> Limits:
        return self._alarm.limits

    def fill(self) -> Fill:
        with self._lock:
            return measure(self.db, self.limits, self._n_records)

    def full(self) -> bool:
        """At a limit: pull nothing more from devices until the cloud confirms batches."""
        return self.fill().level == FULL

    def _note_fill(self) -> None:
        self._alarm.note(self.fill())

    # -- batches --------------------------------------------------------------------------

    def seal_batch(self, max_records: int = 100) -> tuple[int, bytes] | None:
        """Put up to max_records unbatched records (oldest first) into a new signed batch.

        Returns (bseq, payload), or None when nothing is unbatched. One transaction: the
        batch row, the records' batch_id and the next bseq commit together."""
        if self.gateway_id is None or self._key is None:
            raise RuntimeError("seal_batch needs the gateway id and signing key")
        max_records = max(1, min(max_records, pbatch.MAX_RECORDS))
        with self._tx() as c:
            rows = c.execute("SELECT id, device_id, raw FROM records WHERE batch_id IS NULL "
                             "ORDER BY id LIMIT ?", (max_records,)).fetchall()
            if not rows:
                return None
            bseq = int(c.execute("SELECT value FROM meta WHERE key = 'next_bseq'").fetchone()[0])
            now = self._clock()
            b = pbatch.Batch(self.gateway_id, bseq, int(now * 1000),
                             [(bytes.fromhex(r[1]), bytes(r[2])) for r in rows])
            payload = pbatch.sign(b, self._key)
            if len(payload) > pbatch.MAX_PAYLOAD:  # cannot happen at 1000 x 40 B; guard anyway
                raise RuntimeError(f"batch of {len(rows)} records is {len(payload)} bytes")
            c.execute("INSERT INTO batches (bseq, payload, n_records, created) VALUES (?, ?, ?, ?)",
                      (bseq, payload, len(rows), now))
            c.executemany("UPDATE records SET batch_id = ? WHERE id = ?", [(bseq, r[0]) for r in rows])
            c.execute("UPDATE meta SET value = ? WHERE key = 'next_bseq'", (bseq + 1,))
        return bseq, payload

    def pending_batches(self, limit: int | None = None,
                        exclude: Collection[int] = ()) -> list[PendingBatch]:
        """Sealed batches the cloud has not confirmed, oldest first, leaving out the bseqs in
        `exclude` (the uplink's batches in flight: it reads only what it will send)."""
        sql = "SELECT bseq, payload, n_records, created, published_at, attempts FROM batches"
        params: tuple[Any, ...] = tuple(int(b) for b in exclude)
        if params:
            sql += f" WHERE bseq NOT IN ({', '.join('?' * len(params))})"
        sql += " ORDER BY bseq"
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        with self._lock:
            return [PendingBatch(int(r[0]), bytes(r[1]), int(r[2]), float(r[3]), r[4], int(r[5]))
                    for r in self._exec(sql, params)]

    def batch(self, bseq: int) -> PendingBatch | None:
        with self._lock:
            r = self._exec("SELECT bseq, payload, n_records, created, published_at, attempts "
                           "FROM batches WHERE bseq = ?", (bseq,)).fetchone()
        return None if r is None else PendingBatch(int(r[0]), bytes(r[1]), int(r[2]), float(r[3]),
                                                   r[4], int(r[5]))

    def mark_published(self, bseqs: Iterable[int]) -> None:
        """Record a publish attempt. Bookkeeping only (after a crash every unconfirmed batch is
        sent again anyway), so it commits without its own fsync: one per publish halved the
        uplink's rate."""
        now = self._clock()
        with self._tx(durable=False) as c:
            c.executemany("UPDATE batches SET published_at = ?, attempts = attempts + 1 WHERE bseq = ?",
                          [(now, b) for b in bseqs])

    def confirm(self, bseq: int, status: str = pbatch.ACK_STORED, stored: int | None = None,
                dup: int | None = None, rej: int | None = None) -> int:
        """The cloud committed batch bseq: delete it and its records, and log the ack (with the
        cloud's counts) in `confirmed`, in the same transaction. Returns records deleted; 0 for
        an unknown or already confirmed bseq (idempotent: the first ack's entry is kept)."""
        return self.confirm_many([(bseq, status, stored, dup, rej)])[0]

    def confirm_many(self, acks: Sequence[tuple[int, str, int | None, int | None, int | None]]
                     ) -> list[int]:
        """`confirm` for several acks (bseq, status, stored, dup, rej) in one transaction: all or
        none are confirmed. Records deleted per ack, in order.

        Committed without its own fsync (the next durable commit carries it to disk): a confirm
        lost to a power cut only brings the batch back, the uplink sends it again and the cloud
        acks it as a duplicate; nothing is lost or counted twice. Its fsync was half the cost of
        an ack on paho's thread."""
        if not acks:
            return []
        out: list[int] = []
        logged = 0
        with self._tx(durable=False) as c:
            now = self._clock()
            for bseq, status, stored, dup, rej in acks:
                n = c.execute("DELETE FROM records WHERE batch_id = ?", (bseq,)).rowcount
                gone = c.execute("DELETE FROM batches WHERE bseq = ? RETURNING n_records",
                                 (bseq,)).fetchall()
                if gone:
                    logged += c.execute("INSERT OR IGNORE INTO confirmed VALUES (?, ?, ?, ?, ?, ?, ?)",
                                        (bseq, int(gone[0][0]), str(status), now, stored, dup,
                                         rej)).rowcount
                out.append(int(n))
            # Trim the log to the newest keep_confirmed, by its kept count (no OFFSET scan).
            excess = self._n_confirmed + logged - max(1, self.keep_confirmed)
            if excess > 0:
                c.execute("DELETE FROM confirmed WHERE bseq IN (SELECT bseq FROM confirmed "
                          "ORDER BY bseq LIMIT ?)", (excess,))
        self._n_confirmed += logged - max(0, excess)
        self._n_records -= sum(out)
        if any(out):
            self._note_fill()
        return out

    def confirmed_batches(self, limit: int | None = None) -> list[ConfirmedBatch]:
        """The last confirmed batches (at most keep_confirmed are kept), newest first."""
        sql = ("SELECT bseq, n_records, status, confirmed_at, stored, dup, rej FROM confirmed "
               "ORDER BY bseq DESC")
        params: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        with self._lock:
            return [ConfirmedBatch(int(r[0]), int(r[1]), str(r[2]), float(r[3]), r[4], r[5], r[6])
                    for r in self._exec(sql, params)]

    def confirmed_batch(self, bseq: int) -> ConfirmedBatch | None:
        """The log entry for bseq, if it was confirmed and is still among the kept ones."""
        with self._lock:
            r = self._exec("SELECT bseq, n_records, status, confirmed_at, stored, dup, rej "
                           "FROM confirmed WHERE bseq = ?", (bseq,)).fetchone()
        return None if r is None else ConfirmedBatch(int(r[0]), int(r[1]), str(r[2]), float(r[3]),
                                                     r[4], r[5], r[6])

    def oldest_unbatched(self) -> float | None:
        with self._lock:
            r = self._exec("SELECT min(received) FROM records WHERE batch_id IS NULL").fetchone()
        return None if r[0] is None else float(r[0])

    def unbatched_count(self) -> int:
        with self._lock:
            return int(self._exec("SELECT count(*) FROM records WHERE batch_id IS NULL").fetchone()[0])

    def counts(self) -> SpoolCounts:
        with self._lock:
            rec, unb, oldest = self._exec(
                "SELECT count(*), sum(batch_id IS NULL), min(CASE WHEN batch_id IS NULL "
                "THEN received END) FROM records").fetchone()
            nb, unpub, nrec = self._exec(
                "SELECT count(*), sum(published_at IS NULL), sum(n_records) FROM batches").fetchone()
            nxt = self._exec("SELECT value FROM meta WHERE key = 'next_bseq'").fetchone()[0]
        return SpoolCounts(int(rec), int(unb or 0), int(nb), int(unpub or 0), int(nrec or 0),
                           None if oldest is None else float(oldest), int(nxt))

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Every spooled record, for inspection/export (raw as hex)."""
        with self._lock:
            rows = self._exec("SELECT device_id, epoch, seq, raw, received, batch_id FROM records "
                              "ORDER BY id").fetchall()
        for r in rows:
            yield {"device_id": r[0], "epoch": r[1], "seq": r[2], "raw": bytes(r[3]).hex(),
                   "received": r[4], "batch": r[5]}

    # -- the running gateway's health, for `status` from another process -----------------

    def set_health(self, health: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES ('health', ?)", (json.dumps(health),))

    def health(self) -> dict[str, Any] | None:
        with self._lock:
            r = self._exec("SELECT value FROM meta WHERE key = 'health'").fetchone()
        return None if r is None else dict(json.loads(r[0]))

    # -- device status (mirrors the collector's in-memory view, for `status`) --------------

    def set_device_status(self, device_id: bytes, **fields: Any) -> None:
        bad = set(fields) - set(DEVICE_FIELDS)
        if bad:
            raise ValueError(f"unknown device status fields: {bad}")
        dev = device_id.hex()
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        upd = ", ".join(f"{k} = excluded.{k}" for k in fields) or "device_id = device_id"
        with self._tx() as c:
            c.execute(f"INSERT INTO devices (device_id{', ' + cols if cols else ''}) "
                      f"VALUES (?{', ' + marks if marks else ''}) "
                      f"ON CONFLICT(device_id) DO UPDATE SET {upd}", (dev, *fields.values()))

    def device_status(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._exec(f"SELECT device_id, {', '.join(DEVICE_FIELDS)} FROM devices").fetchall()
        return {r[0]: dict(zip(DEVICE_FIELDS, r[1:], strict=True)) for r in rows}

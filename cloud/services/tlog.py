"""The trust log in the database (docs/trust.md): leaves appended in the transaction of what they
record, signed checkpoints, witnesses' cosignatures and proofs. Formats are protocol/'s (merkle,
leaves, note); this module only stores and serves them.

Invariants:
- A leaf is appended in the same transaction as the row it records, so a crash leaves both or
  neither. Services queue leaves with add_* during their transaction; the queue is appended by a
  before_commit hook, after everything else the transaction wrote: the log's lock is always the
  last one a transaction takes (no deadlock with campaign or ledger locks) and is held only for
  the append and the commit.
- Appends are serialized by log_state's one row: an UPDATE of it is the first statement of an
  append (a row lock on PostgreSQL, the write lock on SQLite), so indexes are allocated without
  races across processes: no fork, no gap.
- log_leaves, log_nodes and log_checkpoints are append-only; nothing here updates or deletes them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Dialect, event, select
from sqlalchemy.orm import Session

from cloud.errors import ApiError, bad_request, conflict
from cloud.settings import Settings
from cloud.store.engine import SessionFactory, insert_ignore, now_ms
from cloud.store.models import (
    BatchEnvelope,
    Campaign,
    Entry,
    Gateway,
    LogCheckpoint,
    LogCosignature,
    LogLeaf,
    LogNode,
    LogState,
    Order,
    Participant,
)
from protocol import leaves, merkle, note

log = logging.getLogger(__name__)

PENDING = "tlog_pending"  # session.info: leaves queued by this transaction
OFF = "tlog_off"  # session.info (from the session factory): the trust_log setting is off
# session.info (one set shared by every session of a configured factory): gateway-key refs read
# back from the log, so committed; the log is append-only, so they stay logged
KNOWN = "tlog_known"
MAX_PROOF_SIZE = 1 << 48  # a tree size no request may name beyond the log's own
_ENVELOPES_PER_INSERT = 200  # rows of one multi-row INSERT: 800 parameters, far below any bound


@dataclass(frozen=True)
class _Pending:
    kind: str
    ref: str
    leaf: bytes


def configure(sf: SessionFactory, on: bool) -> None:
    """The trust_log setting for every session of `sf` (on unless configured off)."""
    info = dict(sf.kw.get("info") or {})
    info[OFF] = not on
    info.setdefault(KNOWN, set())
    sf.configure(info=info)


def enabled(s: Session) -> bool:
    return not s.info.get(OFF, False)


_hooks = threading.Lock()
_hooked: list[bool] = []  # one element once the Session class carries the hooks


def _hook() -> None:
    """The append and drop hooks on every Session, set once, at the first leaf queued: a listener
    per session (event.listen on the instance) cost more than the append it triggered. A session
    with nothing queued pays one dict lookup per commit or rollback."""
    with _hooks:
        if not _hooked:
            event.listen(Session, "before_commit", _append_queued)
            event.listen(Session, "after_rollback", _drop_queued)
            _hooked.append(True)


def _queue(s: Session, kind: str, ref: str, leaf: bytes) -> None:
    q: list[_Pending] | None = s.info.get(PENDING)
    if q is None:
        if not _hooked:
            _hook()
        q = s.info[PENDING] = []
    q.append(_Pending(kind, ref, leaf))


def _drop_queued(s: Session) -> None:
    s.info.pop(PENDING, None)


def _append_queued(s: Session) -> None:
    pending: list[_Pending] | None = s.info.pop(PENDING, None)
    if not pending:
        return
    s.flush()
    append(s.connection(), pending, now_ms())


def _frontier(size: int, blob: bytes) -> merkle.Frontier:
    return merkle.Frontier(size, [blob[i:i + merkle.HASH_LEN] for i in range(0, len(blob), merkle.HASH_LEN)])


@dataclass(frozen=True)
class _Sql:
    """The append's statements for one dialect, written out once: run through exec_driver_sql they
    skip SQLAlchemy's per-call statement building and caching, which cost more than the SQL. On
    PostgreSQL the leaves, their nodes and the new state go in one statement (arrays unnested in
    one round trip, not three); elsewhere in three."""
    lock: str
    leaves: str
    nodes: str
    save: str
    all_in_one: str | None

    @classmethod
    def of(cls, dialect: Dialect) -> _Sql:
        got = _SQL.get(dialect.name)
        if got is None:
            ph = {"qmark": "?", "format": "%s", "pyformat": "%s"}[dialect.paramstyle]
            q = dialect.identifier_preparer

            def table(t: Any) -> str:
                return str(q.format_table(t.__table__))

            def cols(names: tuple[str, ...]) -> str:
                return ", ".join(q.quote(c) for c in names)

            def ins(t: Any, names: tuple[str, ...]) -> str:
                return f"INSERT INTO {table(t)} ({cols(names)}) VALUES ({', '.join([ph] * len(names))})"

            leaf_cols = ("idx", "kind", "ref", "leaf", "hash", "created_at_ms")
            node_cols = ("level", "idx", "hash")
            state_ = table(LogState)
            save = f"UPDATE {state_} SET size = {ph}, frontier = {ph} WHERE id = 1"
            one = None
            if dialect.name == "postgresql":
                arrays = ", ".join(f"{ph}::{a}[]" for a in ("int8", "text", "text", "bytea", "bytea", "int8"))
                one = (f"WITH l AS (INSERT INTO {table(LogLeaf)} ({cols(leaf_cols)}) SELECT * FROM unnest("
                       f"{arrays})), n AS (INSERT INTO {table(LogNode)} ({cols(node_cols)}) SELECT * FROM "
                       f"unnest({ph}::int2[], {ph}::int8[], {ph}::bytea[])) {save}")
            got = _SQL[dialect.name] = cls(
                f"UPDATE {state_} SET size = size WHERE id = 1 RETURNING size, frontier",
                ins(LogLeaf, leaf_cols), ins(LogNode, node_cols), save, one)
        return got


_SQL: dict[str, _Sql] = {}


def append(conn: Connection, items: Sequence[_Pending], t: int) -> int:
    """Append leaves in this transaction; returns the index of the first. The UPDATE comes first:
    it takes the lock every other appender waits for before it reads the size. Then the leaves,
    the perfect nodes they complete (if any) and the new size and frontier."""
    sql = _Sql.of(conn.dialect)
    size, blob = conn.exec_driver_sql(sql.lock).one()
    f = _frontier(size, bytes(blob))
    leaf_rows: list[tuple[int, str, str, bytes, bytes, int]] = []
    node_rows: list[tuple[int, int, bytes]] = []
    for p in items:
        h = merkle.leaf_hash(p.leaf)
        leaf_rows.append((f.size, p.kind, p.ref, p.leaf, h, t))
        node_rows += f.append(h)[1:]
    state_ = (f.size, b"".join(f.hashes))
    if sql.all_in_one is not None:
        conn.exec_driver_sql(sql.all_in_one, (*map(list, zip(*leaf_rows, strict=True)),
                                              *(map(list, zip(*node_rows, strict=True)) if node_rows
                                                else ([], [], [])), *state_))
        return int(size)
    conn.exec_driver_sql(sql.leaves, leaf_rows)  # type: ignore[arg-type]
    if node_rows:
        conn.exec_driver_sql(sql.nodes, node_rows)  # type: ignore[arg-type]
    conn.exec_driver_sql(sql.save, state_)
    return int(size)


# What is logged, and the ref each leaf is found by (docs/trust.md, "In the cloud").

def batch_ref(gateway_id: str, bseq: int) -> str:
    return f"batch:{gateway_id}:{bseq}"


def entry_key(entry_id: str) -> str:
    return leaves.entry_ref(entry_id).hex()


def add_batches(s: Session, accepted: Sequence[tuple[str, int, bytes]], t: int,
                gateway_keys: dict[str, bytes] | None = None) -> None:
    """Accepted batches (gateway id hex, bseq, envelope as received): each new one's envelope is
    kept and its leaf queued; a redelivery adds nothing. A gateway's current key (from
    `gateway_keys`, gateway id hex -> public key, else read) is logged before its first batch under
    that key."""
    if not accepted or not enabled(s):
        return
    rows = sorted({(gw, bseq): env for gw, bseq, env in accepted}.items())
    fresh = _new_envelopes(s.connection(), [(gw, bseq, env, t) for (gw, bseq), env in rows])
    if not fresh:
        return
    _gateway_keys(s, sorted({gw for gw, _ in fresh}), t, gateway_keys)
    for (gw, bseq), env in rows:
        if (gw, bseq) in fresh:
            _queue(s, leaves.BATCH, batch_ref(gw, bseq), leaves.batch(bytes.fromhex(gw), bseq, env, t))


def _new_envelopes(conn: Connection, rows: list[tuple[str, int, bytes, int]]) -> set[tuple[str, int]]:
    """Keep the envelopes (gateway, bseq, envelope, received at; keys distinct) not kept yet, in one
    multi-row INSERT .. ON CONFLICT DO NOTHING RETURNING, written out (SQLAlchemy's insert with
    RETURNING cost more than the row); returns the (gateway, bseq) of those that were new."""
    d = conn.dialect
    ph = {"qmark": "?", "format": "%s", "pyformat": "%s"}[d.paramstyle]
    q = d.identifier_preparer
    cols = ", ".join(q.quote(c) for c in ("gateway_id", "bseq", "envelope", "received_at_ms"))
    head = f"INSERT INTO {q.format_table(BatchEnvelope.__table__)} ({cols}) VALUES "  # type: ignore[arg-type]
    new: set[tuple[str, int]] = set()
    for i in range(0, len(rows), _ENVELOPES_PER_INSERT):
        part = rows[i:i + _ENVELOPES_PER_INSERT]
        sql = (head + ", ".join([f"({ph}, {ph}, {ph}, {ph})"] * len(part))
               + " ON CONFLICT (gateway_id, bseq) DO NOTHING RETURNING gateway_id, bseq")
        got = conn.exec_driver_sql(sql, tuple(x for r in part for x in r))
        new.update((gw, int(bseq)) for gw, bseq in got)
    return new


def _gateway_keys(s: Session, gws: list[str], t: int, given: dict[str, bytes] | None) -> None:
    """Queue the current key of each gateway unless the log has it."""
    if given is None:
        given = {gw: bytes(g.public_key) for gw in gws if (g := s.get(Gateway, gw)) is not None}
    keys = {gw: given[gw] for gw in gws if gw in given}
    refs = {gw: f"gateway:{gw}:{pub.hex()}" for gw, pub in keys.items()}
    known: set[str] = s.info.get(KNOWN, set())
    unsure = sorted(r for r in refs.values() if r not in known)
    if not unsure:
        return
    logged = set(s.scalars(select(LogLeaf.ref).where(LogLeaf.ref.in_(unsure))))
    known.update(logged)
    for gw, ref in sorted(refs.items()):
        if ref not in logged and ref not in known:
            _queue(s, leaves.GATEWAY, ref, leaves.gateway(bytes.fromhex(gw), keys[gw], t))


def add_entry(s: Session, e: Entry) -> None:
    """A resolved code: a display (or printed) code names its device and window, a share code the
    entry that made the sharer, a bare base code neither."""
    if not enabled(s):
        return
    c = s.get(Campaign, e.campaign_id)
    assert c is not None
    if e.parent_participant_id is not None:
        p = s.get(Participant, e.parent_participant_id)
        assert p is not None
        leaf = leaves.shared_entry(e.id, c.id, e.code, p.entry_id, e.created_at_ms)
    else:  # a display or printed code (device and window, or no window), or a bare base code (neither)
        dev = bytes.fromhex(e.device_id) if e.device_id is not None else None
        leaf = leaves.encode(leaves.ENTRY, {
            "entry": leaves.entry_ref(e.id), "campaign": c.id, "code": e.code, "device": dev,
            "window": e.window, "period": c.period_s if dev else None, "slots": c.slots if dev else None,
            "parent": None, "at": e.created_at_ms})
    _queue(s, leaves.ENTRY, f"entry:{entry_key(e.id)}", leaf)


def add_share(s: Session, p: Participant, c: Campaign) -> None:
    """A shopper became a sharer with the personal code BASE-NNNNNN."""
    if enabled(s):
        _queue(s, leaves.SHARE, f"share:{entry_key(p.entry_id)}",
               leaves.share(p.entry_id, p.id, f"{c.base_code}-{p.share_code}", p.created_at_ms))


def add_order(s: Session, o: Order, payouts: Sequence[tuple[int, int | None, str, int]],
              params: dict[str, Any]) -> None:
    """An order and its pool's split: (level, participant or None, payee, amount) summing to the pool."""
    if enabled(s):
        _queue(s, leaves.ORDER, f"order:{o.id}", leaves.order(
            o.id, o.merchant_id, o.campaign_id, o.entry_id, o.amount_minor, o.pool_minor, o.rule, params,
            payouts, o.created_at_ms))


def add_posting(s: Session, txn_id: int, kind: str, merchant_id: int, campaign_id: int, order_id: int | None,
                lines: Sequence[tuple[str, int, int]], at_ms: int) -> None:
    """A balanced ledger transaction as booked: its non-zero lines (account ref, amount, due)."""
    if enabled(s):
        _queue(s, leaves.POSTING, f"posting:{txn_id}", leaves.posting(
            txn_id, kind, merchant_id, campaign_id, order_id, [ln for ln in lines if ln[1]], at_ms))


def add_settlement(s: Session, settlement_id: int, merchant_id: int, paid: Sequence[tuple[int, int, int]],
                   at_ms: int) -> None:
    """A batch of payouts marked paid: (participant, amount, settlement posting's txn id) each."""
    if enabled(s):
        _queue(s, leaves.SETTLEMENT, f"settlement:{settlement_id}",
               leaves.settlement(settlement_id, merchant_id, paid, at_ms))


# Reading: sizes, nodes, proofs.

def state(s: Session) -> merkle.Frontier:
    size, blob = s.execute(select(LogState.size, LogState.frontier).where(LogState.id == 1)).one()
    return _frontier(int(size), bytes(blob))


def node_source(s: Session) -> Callable[[int, int], bytes]:
    """node(level, index) from the store: leaf hashes at level 0, stored perfect nodes above."""
    def node(level: int, index: int) -> bytes:
        if level == 0:
            h = s.scalar(select(LogLeaf.hash).where(LogLeaf.idx == index))
        else:
            h = s.scalar(select(LogNode.hash).where(LogNode.level == level, LogNode.idx == index))
        if h is None:
            raise LookupError(f"log node ({level}, {index}) is missing")
        return bytes(h)
    return node


def _bad_size(what: str) -> ApiError:
    return bad_request("bad_size", f"{what} outside the log (0 <= index < size <= the log's size)",
                       f"{what} 超出日志范围（0 <= 序号 < 大小 <= 日志大小）")


def inclusion(sf: SessionFactory, index: int, size: int) -> list[bytes]:
    with sf() as s:
        if not 0 <= index < size or size > state(s).size:
            raise _bad_size("index or size")
        return merkle.inclusion_proof(index, size, node_source(s))


def consistency(sf: SessionFactory, old: int, new: int) -> list[bytes]:
    with sf() as s:
        if not 0 <= old <= new or new > state(s).size:
            raise _bad_size("from or to")
        return merkle.consistency_proof(old, new, node_source(s))


def leaf_range(sf: SessionFactory, start: int, end: int) -> list[tuple[int, str, bytes]]:
    """Leaves start..end-1 as (index, kind, leaf bytes), for an export."""
    with sf() as s:
        return [(int(i), k, bytes(b)) for i, k, b in s.execute(
            select(LogLeaf.idx, LogLeaf.kind, LogLeaf.leaf).where(LogLeaf.idx >= start, LogLeaf.idx < end)
            .order_by(LogLeaf.idx))]


# Checkpoints and cosignatures.

def publish(sf: SessionFactory, signer: note.Signer, t: int | None = None) -> LogCheckpoint:
    """Sign a checkpoint of the log as it is now (or return the one of that size if signed
    already: signing is deterministic, so processes racing here sign the same note)."""
    with sf.begin() as s:
        f = state(s)
        got = s.get(LogCheckpoint, f.size)
        if got is not None:
            return got
        root = f.root()
        text = note.sign_checkpoint(note.Checkpoint(signer.name, f.size, root), signer).render()
        insert_ignore(s, LogCheckpoint.__table__, [{  # type: ignore[arg-type]
            "size": f.size, "root": root, "note": text, "created_at_ms": now_ms() if t is None else t}],
            ["size"])
    with sf() as s:
        got = s.get(LogCheckpoint, f.size)
        assert got is not None
        return got


def publish_if_grown(sf: SessionFactory, signer: note.Signer) -> int | None:
    """The fixed-interval publisher's step: a new checkpoint when the log grew; its size or None."""
    with sf() as s:
        size = state(s).size
        latest = s.scalar(select(LogCheckpoint.size).order_by(LogCheckpoint.size.desc()).limit(1))
    if latest is not None and latest >= size:
        return None
    return publish(sf, signer).size


def cosigned(s: Session, cp: LogCheckpoint) -> str:
    """The checkpoint note with every cosignature held for it."""
    lines = "".join(s.scalars(select(LogCosignature.line).where(LogCosignature.size == cp.size)
                              .order_by(LogCosignature.witness)))
    return note.parse_note(cp.note).with_lines(lines).render() if lines else cp.note


def latest(sf: SessionFactory, signer: note.Signer) -> str:
    """GET /log/checkpoint: the newest checkpoint (one is signed if there is none yet), cosigned."""
    with sf() as s:
        cp = s.scalar(select(LogCheckpoint).order_by(LogCheckpoint.size.desc()).limit(1))
        if cp is not None:
            return cosigned(s, cp)
    cp = publish(sf, signer)
    with sf() as s:
        return cosigned(s, cp)


def add_cosignature(sf: SessionFactory, body: bytes, witnesses: Sequence[note.Verifier]) -> list[str]:
    """Keep a witness's cosignature of a checkpoint this log signed; returns the witnesses kept.
    The note must carry the checkpoint's exact text and verify against a configured witness key."""
    try:
        n = note.parse_note(body)
        size = note.parse_checkpoint(n.text).size
        good = note.verify(n, list(witnesses))
    except note.NoteError as e:
        raise bad_request(f"cosignature_{e.reason}", f"not a cosignature of a known witness: {e.detail}",
                          f"不是已知见证者的副签：{e.detail}") from None
    with sf.begin() as s:
        cp = s.get(LogCheckpoint, size)
        if cp is None or note.parse_note(cp.note).text != n.text:
            raise conflict("unknown_checkpoint", "this log signed no such checkpoint",
                           "本日志没有签发过这个检查点")
        rows = [{"size": size, "witness": v.name, "line": sig.line(), "created_at_ms": now_ms()}
                for v in good for sig in n.signatures if (sig.name, sig.key_id) == (v.name, v.key_id)]
        insert_ignore(s, LogCosignature.__table__, rows, ["size", "witness"])  # type: ignore[arg-type]
    return sorted(v.name for v in good)


# Keys: the log's own signer key file (a C2SP signer key; its name is the log's origin) and the
# witnesses whose cosignatures the cloud keeps.

def log_signer(path: str | Path, origin: str) -> note.Signer:
    """The log's Ed25519 signer from its key file (PRIVATE+KEY+origin+...), made (mode 0600) on
    first use. A file whose key name is not `origin` is refused: the origin names the log."""
    p = Path(path)
    if p.exists():
        signer = note.parse_skey(p.read_text())
        if signer.name != origin or signer.sig_type != note.ED25519:
            raise ValueError(f"{p} holds the key of {signer.name!r}, not of the log {origin!r}")
        return signer
    signer = note.Signer.generate(origin)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(signer.skey() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, p)  # fails if another process made the key first: then that one is the key
        log.info("made a new trust log key for %s in %s: %s", origin, p, signer.verifier.vkey())
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return log_signer(p, origin)


def derived_signer(master_key: bytes, origin: str) -> note.Signer:
    """The log's signer when no key file is set: its seed is HMAC-SHA256(master key, label), so
    every API process has the same key without a file. Rotating the master key changes it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = hmac.new(master_key, b"mcode trust log key v1\n" + origin.encode(), hashlib.sha256).digest()
    return note.Signer(origin, note.ED25519, Ed25519PrivateKey.from_private_bytes(seed))


def witness_keys(text: str) -> list[note.Verifier]:
    """The witness_keys setting: verifier keys separated by commas or whitespace."""
    return [note.parse_vkey(k) for k in text.replace(",", " ").split()]


def settings_signer(st: Settings) -> note.Signer:
    """The log's signer as the settings say: the key file log_signing_key, else derived from the
    master key. Raises OSError or ValueError (NoteError) for a key file that cannot be used."""
    if st.log_signing_key:
        return log_signer(st.log_signing_key, st.log_origin)
    return derived_signer(st.master_keys()[0], st.log_origin)


class Publisher:
    """Signs a checkpoint every `interval_s` when the log grew (a daemon thread of `mcode cloud
    run`). Several API processes may each run one: they sign the same note for the same size."""

    def __init__(self, sf: SessionFactory, signer: note.Signer, interval_s: float) -> None:
        self._sf, self._signer, self._interval = sf, signer, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tlog-publisher", daemon=True)

    def start(self) -> Publisher:
        if self._interval > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                size = publish_if_grown(self._sf, self._signer)
                if size is not None:
                    log.info("signed the trust log's checkpoint at size %d", size)
            except Exception:  # a database outage must not end the thread: try again next time
                log.exception("could not sign a checkpoint")

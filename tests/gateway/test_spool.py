"""The spool: idempotent adds, sealing, confirm, durability across reopen, and no loss or duplication."""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway import config as gconfig
from gateway import spool as spool_mod
from gateway.spool import ConfirmedBatch, Spool, SpoolSchemaError
from protocol import batch as pbatch
from tests.gateway.helpers import DEV_A, DEV_B, GW_ID, open_spool, rec, recs


def test_add_is_idempotent(tmp_path: Path) -> None:
    with open_spool(tmp_path / "s.db") as s:
        assert s.add_records(DEV_A, recs(DEV_A, range(1, 11))) == 10
        assert s.add_records(DEV_A, recs(DEV_A, range(1, 11))) == 0
        assert s.add_records(DEV_A, recs(DEV_A, range(5, 16))) == 5
        assert s.cursor(DEV_A) == 15
        assert s.cursor(DEV_B) is None
        assert s.counts().records == 15


def test_malformed_record_writes_nothing(tmp_path: Path) -> None:
    with open_spool(tmp_path / "s.db") as s:
        try:
            s.add_records(DEV_A, [rec(DEV_A, 1), b"short"])
        except ValueError:
            pass
        else:
            raise AssertionError("a short record must be refused")
        assert s.counts().records == 0 and s.cursor(DEV_A) is None


def test_seal_builds_a_signed_batch(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    with open_spool(tmp_path / "s.db", key) as s:
        s.add_records(DEV_A, recs(DEV_A, range(1, 8)))
        s.add_records(DEV_B, recs(DEV_B, range(1, 4)))
        first = s.seal_batch(6)
        assert first is not None
        bseq, payload = first
        body, sig, b = pbatch.open_envelope(payload)
        assert pbatch.verify(body, sig, key.public_key())
        assert b.gateway_id == GW_ID and b.bseq == bseq
        assert b.records == [(DEV_A, r) for r in recs(DEV_A, range(1, 7))]
        second = s.seal_batch(100)
        assert second is not None and second[0] == bseq + 1
        assert [r for _, r in pbatch.open_envelope(second[1])[2].records] == \
            [rec(DEV_A, 7)] + recs(DEV_B, range(1, 4))
        assert s.seal_batch(100) is None
        assert [p.bseq for p in s.pending_batches()] == [bseq, bseq + 1]
        assert s.counts().unbatched == 0


def test_confirm_deletes_batch_and_records(tmp_path: Path) -> None:
    with open_spool(tmp_path / "s.db") as s:
        s.add_records(DEV_A, recs(DEV_A, range(1, 6)))
        sealed = s.seal_batch(3)
        assert sealed is not None
        assert s.confirm(sealed[0]) == 3
        assert s.confirm(sealed[0]) == 0  # idempotent
        assert s.confirm(123456) == 0
        c = s.counts()
        assert c.records == 2 and c.batches == 0 and c.unbatched == 2
        # a confirmed record offered again (e.g. a device that re-sends) is not spooled twice
        assert s.add_records(DEV_A, recs(DEV_A, range(1, 6))) == 0
        assert s.cursor(DEV_A) == 5


def test_survives_reopen(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    s = Spool(tmp_path / "s.db", GW_ID, key)
    s.add_records(DEV_A, recs(DEV_A, range(1, 11)))
    sealed = s.seal_batch(4)
    assert sealed is not None
    s.close()
    s = Spool(tmp_path / "s.db", GW_ID, key)
    assert s.schema_version() == len(spool_mod.MIGRATIONS)
    assert s.cursor(DEV_A) == 10
    assert [(p.bseq, p.payload) for p in s.pending_batches()] == [sealed]
    assert s.counts().unbatched == 6
    nxt = s.seal_batch(100)
    assert nxt is not None and nxt[0] == sealed[0] + 1
    s.close()


def test_pragmas(tmp_path: Path) -> None:
    with open_spool(tmp_path / "s.db") as s:
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


Key = tuple[bytes, int]


class SpoolMachine(RuleBasedStateMachine):
    """Any interleaving of add / seal / confirm / reopen: each record added is exactly one of
    unbatched, in one pending batch, or confirmed; never lost, never duplicated."""

    @initialize()
    def setup(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.key = Ed25519PrivateKey.generate()
        self.spool = Spool(Path(self.dir.name) / "s.db", GW_ID, self.key, keep_confirmed=4)
        self.added: set[Key] = set()
        self.confirmed: set[Key] = set()
        self.batches: dict[int, list[Key]] = {}

    def teardown(self) -> None:
        if hasattr(self, "spool"):
            self.spool.close()
            self.dir.cleanup()

    @rule(dev=st.sampled_from([DEV_A, DEV_B]), start=st.integers(1, 40), n=st.integers(0, 12))
    def add(self, dev: bytes, start: int, n: int) -> None:
        seqs = list(range(start, start + n))
        cur = self.spool.cursor(dev)
        new = self.spool.add_records(dev, recs(dev, seqs))
        expect = {(dev, s) for s in seqs if cur is None or s > cur} - self.added - self.confirmed
        assert new == len(expect)
        self.added |= {(dev, s) for s in seqs if cur is None or s > cur}

    @rule(n=st.integers(1, 15))
    def seal(self, n: int) -> None:
        out = self.spool.seal_batch(n)
        if out is None:
            assert self.spool.unbatched_count() == 0
            return
        bseq, payload = out
        assert bseq not in self.batches
        b = pbatch.open_envelope(payload)[2]
        assert 1 <= len(b.records) <= n
        self.batches[bseq] = [(d, int.from_bytes(r[8:12], "big")) for d, r in b.records]

    @precondition(lambda self: bool(self.batches))
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        bseq = data.draw(st.sampled_from(sorted(self.batches)))
        keys = self.batches.pop(bseq)
        assert self.spool.confirm(bseq) == len(keys)
        self.confirmed |= set(keys)

    @rule(bseq=st.integers(0, 5))
    def confirm_unknown(self, bseq: int) -> None:
        assert self.spool.confirm(bseq) == 0

    @rule(data=st.data())
    def confirm_many(self, data: st.DataObject) -> None:
        """Acks arriving together, an unknown bseq and a repeated ack among them."""
        picked = data.draw(st.lists(st.sampled_from(sorted(self.batches) or [0]), max_size=4))
        acks = [(b, pbatch.ACK_STORED, None, None, None) for b in [*picked, 3, *picked[:1]]]
        expect = []
        for b, *_ in acks:
            keys = self.batches.pop(b, [])
            self.confirmed |= set(keys)
            expect.append(len(keys))
        assert self.spool.confirm_many(acks) == expect

    @rule(data=st.data())
    def publish(self, data: st.DataObject) -> None:
        """The uplink's reads and bookkeeping: only batches not in flight, attempts counted."""
        pending = [p.bseq for p in self.spool.pending_batches()]
        flying = data.draw(st.lists(st.sampled_from(pending or [0]), unique=True))
        left = [p.bseq for p in self.spool.pending_batches(limit=3, exclude=flying)]
        assert left == [b for b in pending if b not in flying][:3]
        before = {p.bseq: p.attempts for p in self.spool.pending_batches()}
        self.spool.mark_published(left)
        after = {p.bseq: p.attempts for p in self.spool.pending_batches()}
        assert after == {b: n + (b in left) for b, n in before.items()}
        # Its commit skipped the fsync only for itself: what follows is FULL again.
        assert self.spool.db.execute("PRAGMA synchronous").fetchone()[0] == 2

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = Spool(Path(self.dir.name) / "s.db", GW_ID, self.key, keep_confirmed=4)

    @invariant()
    def nothing_lost_or_duplicated(self) -> None:
        if not hasattr(self, "spool"):
            return
        rows = list(self.spool.iter_records())
        unbatched = [(bytes.fromhex(r["device_id"]), r["seq"]) for r in rows if r["batch"] is None]
        pending: list[Key] = []
        for p in self.spool.pending_batches():
            b = pbatch.open_envelope(p.payload)[2]
            assert pbatch.verify(*pbatch.open_envelope(p.payload)[:2], self.key.public_key())
            pending += [(d, int.from_bytes(r[8:12], "big")) for d, r in b.records]
        everything = unbatched + pending + sorted(self.confirmed)
        assert len(everything) == len(set(everything)), "a record is in two places"
        assert set(everything) == self.added, "a record was lost or invented"
        assert sorted(pending) == sorted(k for ks in self.batches.values() for k in ks)
        # The record count the spool keeps for its fill, against the rows themselves.
        assert self.spool.fill().records == len(rows) == self.spool.counts().records
        assert len(self.spool.confirmed_batches()) <= self.spool.keep_confirmed


TestSpoolMachine = SpoolMachine.TestCase
TestSpoolMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


# -- bounded size --------------------------------------------------------------------------


def _limited(path: Path, **kw: object) -> Spool:
    return Spool(path, GW_ID, Ed25519PrivateKey.generate(), **kw)  # type: ignore[arg-type]


def test_record_limit_stores_the_oldest_that_fit_and_never_deletes(tmp_path: Path) -> None:
    with _limited(tmp_path / "s.db", max_records=10) as s:
        assert s.add_records(DEV_A, recs(DEV_A, range(1, 16))) == 10
        assert s.cursor(DEV_A) == 10  # so a session acks only 1..10; 11..15 stay on the device
        assert [r["seq"] for r in s.iter_records()] == list(range(1, 11))
        f = s.fill()
        assert (f.records, f.level, s.full()) == (10, "full", True)
        assert s.add_records(DEV_B, recs(DEV_B, range(1, 3))) == 0 and s.cursor(DEV_B) is None
        # Sealing and publishing go on; only a confirm makes room.
        sealed = s.seal_batch(4)
        assert sealed is not None and s.full()
        assert s.confirm(sealed[0]) == 4
        assert not s.full() and s.fill().level == "ok"  # 6 of 10
        # The device re-offers everything it still holds: only what fits, in seq order.
        assert s.add_records(DEV_A, recs(DEV_A, range(1, 16))) == 4
        assert s.cursor(DEV_A) == 14
        assert [r["seq"] for r in s.iter_records()] == list(range(5, 15))


def test_byte_limit_bounds_the_file_and_keeps_every_stored_record(tmp_path: Path) -> None:
    limit = 256 * 1024
    with _limited(tmp_path / "s.db", max_bytes=limit) as s:
        stored = 0
        offered = 0
        for _ in range(200):
            offered += 50
            n = s.add_records(DEV_A, recs(DEV_A, range(stored + 1, stored + 51)))
            stored += n
            if n == 0:
                break
        assert stored < offered, "the byte limit never bit"
        assert s.full() and s.fill().bytes <= limit * 1.05  # room is estimated per record
        assert s.counts().records == stored and s.cursor(DEV_A) == stored
        assert [r["seq"] for r in s.iter_records()] == list(range(1, stored + 1))


def test_fill_alarm_warns_then_errors_then_recovers(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.spool_limits")
    with _limited(tmp_path / "s.db", max_records=10, warn_fraction=0.8) as s:
        s.add_records(DEV_A, recs(DEV_A, range(1, 8)))
        assert [r.levelno for r in caplog.records] == []
        s.add_records(DEV_A, recs(DEV_A, range(8, 9)))
        assert [(r.levelno, r.getMessage()[:14]) for r in caplog.records] == \
            [(logging.WARNING, "SPOOL 80% FULL")]
        assert caplog.records[-1].alarm == "warn"  # type: ignore[attr-defined]
        s.add_records(DEV_A, recs(DEV_A, range(9, 20)))
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any(m.startswith("SPOOL FULL") for m in errors)
        caplog.clear()
        sealed = s.seal_batch(10)
        assert sealed is not None and s.confirm(sealed[0]) == 10
        assert [(r.levelno, r.getMessage()[:13]) for r in caplog.records] == \
            [(logging.INFO, "spool back to")]
    caplog.clear()
    # A gateway restarted on a spool in alarm says so at once.
    with _limited(tmp_path / "s.db", max_records=2) as s:
        s.add_records(DEV_B, recs(DEV_B, range(1, 3)))
    with _limited(tmp_path / "s.db", max_records=2):
        assert any(r.getMessage().startswith("SPOOL FULL") for r in caplog.records)


def test_limits_come_from_the_spool_table_in_gateway_toml(tmp_path: Path) -> None:
    base = {"gateway_id": GW_ID.hex(), "private_key": "k.pem"}
    cfg = gconfig.parse({**base, "spool": "s.db"}, tmp_path)
    assert cfg.spool_path == tmp_path / "s.db" and cfg.spool == gconfig.SpoolConfig()
    cfg = gconfig.parse({**base, "spool": {"path": "var/s.db", "max_records": 5, "max_bytes": 0,
                                           "warn_fraction": 0.5, "keep_confirmed": 7}}, tmp_path)
    assert cfg.spool_path == tmp_path / "var/s.db"
    assert cfg.spool == gconfig.SpoolConfig(5, 0, 0.5, 7)
    for bad in ({"max_records": 5}, {"path": "s.db", "max_records": -1},
                {"path": "s.db", "warn_fraction": 1.5}, {"path": "s.db", "max_records": "lots"},
                {"path": "s.db", "size": 3}, {"path": "s.db", "keep_confirmed": 0}):
        with pytest.raises(gconfig.ConfigError):
            gconfig.parse({**base, "spool": bad}, tmp_path)


# -- confirmed-batches log -----------------------------------------------------------------


def test_confirmed_batches_are_logged_with_the_clouds_counts(tmp_path: Path) -> None:
    clock = [1000.0]
    with Spool(tmp_path / "s.db", GW_ID, Ed25519PrivateKey.generate(), lambda: clock[0],
               keep_confirmed=3) as s:
        s.add_records(DEV_A, recs(DEV_A, range(1, 13)))
        bseqs = []
        for _ in range(6):
            sealed = s.seal_batch(2)
            assert sealed is not None
            bseqs.append(sealed[0])
        clock[0] = 2000.0
        assert s.confirm(bseqs[0], pbatch.ACK_STORED, stored=1, dup=1, rej=0) == 2
        assert s.confirm(bseqs[0], pbatch.ACK_STORED, stored=0, dup=2, rej=0) == 0  # a resent ack
        assert s.confirm(999) == 0  # unknown: not logged
        assert s.confirmed_batches() == [ConfirmedBatch(bseqs[0], 2, "stored", 2000.0, 1, 1, 0)]
        s.confirm(bseqs[1], pbatch.ACK_QUARANTINED)
        assert s.confirmed_batch(bseqs[1]) == ConfirmedBatch(bseqs[1], 2, "quarantined", 2000.0,
                                                             None, None, None)
        for b in bseqs[2:]:
            s.confirm(b, stored=2, dup=0, rej=0)
        # Bounded: the newest keep_confirmed, newest first.
        assert [c.bseq for c in s.confirmed_batches()] == bseqs[:2:-1]
        assert s.confirmed_batch(bseqs[0]) is None
        assert [c.bseq for c in s.confirmed_batches(limit=1)] == [bseqs[-1]]
    with Spool(tmp_path / "s.db") as s:  # kept across restarts
        assert len(s.confirmed_batches()) == 3


# -- schema migrations ---------------------------------------------------------------------


def _spool_at(path: Path, version: int) -> None:
    """A spool file as a gateway that knew only the first `version` migrations left it, with
    records unbatched, in a pending batch and confirmed (cursor above them)."""
    key = Ed25519PrivateKey.generate()
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    c.execute("INSERT INTO schema_version VALUES (?)", (version,))
    for m in spool_mod.MIGRATIONS[:version]:
        c.executescript(m)
    c.execute("INSERT INTO meta VALUES ('next_bseq', 501)")
    rows = [(DEV_A.hex(), 1, s, rec(DEV_A, s), 10.0 + s, 500 if s <= 3 else None) for s in range(3, 8)]
    c.executemany("INSERT INTO records (device_id, epoch, seq, raw, received, batch_id) "
                  "VALUES (?, ?, ?, ?, ?, ?)", rows)
    b = pbatch.Batch(GW_ID, 500, 1234, [(DEV_A, rec(DEV_A, 3))])
    c.execute("INSERT INTO batches (bseq, payload, n_records, created) VALUES (500, ?, 1, 5.0)",
              (pbatch.sign(b, key),))
    c.execute("INSERT INTO cursors VALUES (?, 7, 17.0)", (DEV_A.hex(),))
    c.commit()
    c.close()


@pytest.mark.parametrize("version", range(1, len(spool_mod.MIGRATIONS)))
def test_an_older_spool_is_migrated_keeping_everything(tmp_path: Path, version: int) -> None:
    _spool_at(tmp_path / "old.db", version)
    with open_spool(tmp_path / "old.db") as s:
        assert s.schema_version() == len(spool_mod.MIGRATIONS)
        assert [(r["seq"], r["batch"]) for r in s.iter_records()] == \
            [(3, 500), (4, None), (5, None), (6, None), (7, None)]
        assert [p.bseq for p in s.pending_batches()] == [500]
        assert s.cursor(DEV_A) == 7 and s.add_records(DEV_A, recs(DEV_A, range(1, 8))) == 0
        assert s.confirm(500, stored=1, dup=0, rej=0) == 1
        assert [c.bseq for c in s.confirmed_batches()] == [500]
        sealed = s.seal_batch(100)
        assert sealed is not None and sealed[0] == 501  # bseqs carry on, never reused


def test_a_newer_spool_is_refused_untouched(tmp_path: Path) -> None:
    p = tmp_path / "s.db"
    with open_spool(p) as s:
        s.add_records(DEV_A, recs(DEV_A, range(1, 4)))
        s.db.execute("UPDATE schema_version SET version = ?", (len(spool_mod.MIGRATIONS) + 1,))
    with pytest.raises(SpoolSchemaError, match=r"newer than this gateway.*Upgrade mcode"):
        open_spool(p)
    c = sqlite3.connect(p)
    assert c.execute("SELECT count(*) FROM records").fetchone()[0] == 3
    assert c.execute("SELECT version FROM schema_version").fetchone()[0] == len(spool_mod.MIGRATIONS) + 1
    c.close()


def test_a_failed_migration_leaves_the_spool_as_it_was(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "s.db"
    _spool_at(p, 1)
    monkeypatch.setattr(spool_mod, "MIGRATIONS",
                        [*spool_mod.MIGRATIONS, "CREATE TABLE half (a); SELECT no_such_function()"])
    with pytest.raises(sqlite3.OperationalError):
        open_spool(p)
    c = sqlite3.connect(p)
    assert c.execute("SELECT version FROM schema_version").fetchone()[0] == 1
    names = {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
    assert "half" not in names and "confirmed" not in names
    assert c.execute("SELECT count(*) FROM records").fetchone()[0] == 5
    c.close()

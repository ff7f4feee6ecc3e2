"""The spool: idempotent adds, sealing, confirm, durability across reopen, and no loss or duplication."""

from __future__ import annotations

import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.spool import Spool
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
    assert s.schema_version() == 1
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
        self.spool = Spool(Path(self.dir.name) / "s.db", GW_ID, self.key)
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

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = Spool(Path(self.dir.name) / "s.db", GW_ID, self.key)

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


TestSpoolMachine = SpoolMachine.TestCase
TestSpoolMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)

"""The dashboard's rollups (cloud/services/rollups.py) give exactly the live queries' numbers, on
SQLite and PostgreSQL: after ingest, entries, shares, orders and refunds interleaved with rolls,
rows that land in old hours, two rollers at once, and a writer still open while a roll runs."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import func, select

from cloud.services import codes, dashboard, orders, rollups
from cloud.services.auth import MERCHANT, Principal
from cloud.services.ingest import Ingestor
from cloud.store.engine import SessionFactory
from cloud.store.models import Event, RollupState
from protocol import batch as pbatch
from protocol.rotation import window
from tests.cloud.conftest import World
from tests.cloud.mqtt_helpers import records
from tests.cloud.test_resolve_orders import PERIOD, code_at

DAY = 24 * 3600


class Cloud:
    """The world's merchant with a cloud clock that can be set back (rows landing in old hours). It
    starts at the real time: a share takes the time from the system clock."""

    def __init__(self, sf: SessionFactory, world: World) -> None:
        self.sf, self.world, self.t = sf, world, time.time()
        self.now_ms = int(self.t * 1000)
        self.mid = world.merchant["merchant_id"]
        self.ingestor = Ingestor(sf, clock_ms=lambda: int(self.t * 1000))
        self.bseq, self.seq = 0, [0, 0]
        self.entries: list[str] = []

    def taps(self, dev: int, n: int, skip: int = 0) -> None:
        self.bseq += 1
        first = self.seq[dev] + 1 + skip  # skip > 0: records that never arrive, a gap
        self.seq[dev] = first + n - 1
        recs = records(self.world.devices[dev], range(first, first + n))
        payload = pbatch.sign(pbatch.Batch(bytes.fromhex(self.world.gateway_id), self.bseq, 0, recs),
                              self.world.gw_key)
        res = self.ingestor.ingest(pbatch.batch_topic(self.world.gateway_id), payload)
        assert (res.status, res.stored) == ("stored", n)

    def enter(self, code: str | None = None, dev: int = 0) -> str:
        e = codes.resolve(self.sf, code or code_at(self.world, window(self.t, PERIOD), dev),
                          f"{len(self.entries):022d}", self.t)
        self.entries.append(e["entry_id"])
        return str(e["entry_id"])

    def share(self, entry_id: str) -> str:
        return str(codes.share(self.sf, entry_id)["share_code"])

    def order(self, entry_id: str, amount: int) -> int:
        o, _ = orders.place_order(self.sf, self.mid, f"o{self.bseq}-{entry_id}", entry_id, amount,
                                  at_ms=int(self.t * 1000))
        return int(o["order_id"])

    def refund(self, order_id: int) -> None:
        orders.refund(self.sf, Principal(MERCHANT, self.mid), order_id, at_ms=int(self.t * 1000))


def same(c: Cloud) -> dict[str, Any]:
    """The rolled dashboard equals the live one for every period (and a custom range of days)."""
    now, midnight = c.now_ms, c.now_ms // 86_400_000 * 86_400_000
    spans = {k: dashboard.period(k, now) for k in dashboard.PERIODS}
    spans["custom"] = dashboard.period("custom", now, midnight - 5 * DAY * 1000, midnight - 2 * DAY * 1000)
    out = {}
    for k, p in spans.items():
        rolled = dashboard.dashboard(c.sf, c.mid, p, now)
        assert rolled == dashboard.dashboard(c.sf, c.mid, p, now, live=True), k
        out[k] = rolled
    return out


def traffic(c: Cloud) -> None:
    """Displays tapped, shoppers entering, one sharing, a chain buying; a day-old order."""
    c.taps(0, 20)
    c.taps(1, 5, skip=2)
    a = c.enter()
    c.enter(dev=1)
    b = c.enter(c.share(a))
    c.enter(c.share(b))
    c.order(b, 10_000)
    c.t -= DAY
    c.order(c.enter(), 3_000)
    c.t += DAY


def test_rollups_match_live_through_refunds_and_late_rows(sf: SessionFactory, world: World) -> None:
    c = Cloud(sf, world)
    traffic(c)
    first = same(c)["7d"]["headlines"]
    assert (first["entries"]["now"], first["shares"]["now"], first["orders"]["now"]) == (5, 2, 2)
    assert first["taps"]["now"] == 25 and first["paid_minor"]["now"] > 0
    # a refund changes an order in place: the rollups take it from the ledger's refund transaction
    c.refund(1)
    h = same(c)["7d"]["headlines"]
    assert (h["orders"]["now"], h["revenue_minor"]["now"], h["paid_minor"]["now"]) == (1, 3_000, 0)
    # late rows: events received with the clock set back, entries and an order in hours rolled already
    c.t -= 3 * DAY
    c.taps(0, 7)
    old = c.enter()
    c.order(old, 2_500)
    c.t += 3 * DAY
    c.taps(1, 3)
    d = same(c)
    assert d["7d"]["headlines"]["taps"]["now"] == 35 and d["custom"]["headlines"]["taps"]["now"] == 7
    assert d["7d"]["headlines"]["orders"]["now"] == 2
    # refunding twice counts once; rolling again adds nothing
    c.refund(1)
    assert rollups.roll(sf) == dict.fromkeys(rollups.SOURCES, 0)
    assert same(c)["30d"] == d["30d"]
    health = {r["device_id"]: r["events"] for r in d["today"]["devices"]}
    with sf() as s:
        stored = {d: n for d, n in s.execute(select(Event.device_id, func.count()).group_by(Event.device_id))}
    assert health == {k: stored.get(k, 0) for k in health} and sum(health.values()) == 35


def test_two_rollers_and_writers_at_once_count_every_row_once(sf: SessionFactory, world: World) -> None:
    c = Cloud(sf, world)
    traffic(c)
    stop, errors = threading.Event(), []

    def roller() -> None:
        try:
            while not stop.is_set():
                rollups.roll(sf)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=roller) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            c.taps(i % 2, 10)
            e = c.enter(dev=i % 2)
            if i % 2:
                c.order(c.enter(c.share(e)), 1_000 + i)
            if i == 3:
                c.refund(1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    h = same(c)["today"]["headlines"]
    assert h["taps"]["now"] == 85 and h["entries"]["now"] == 4 + 6 + 3


def test_a_roll_waits_for_a_writer_still_open(sf: SessionFactory, world: World) -> None:
    """A row whose transaction is open while a roll starts is counted once it commits, even when a
    later row committed first (PostgreSQL draws ids before commit)."""
    c = Cloud(sf, world)
    traffic(c)
    rollups.roll(sf)
    dev = world.devices[0]["device_id"]
    row = {"device_id": dev, "epoch": 9, "flags": 0, "kind": 1, "time": 0, "data": b"", "raw": b"",
           "gateway_id": world.gateway_id, "bseq": 0, "received_at_ms": c.now_ms}
    open_txn = sf()
    open_txn.add(Event(seq=1, **row))
    open_txn.flush()  # its id is drawn (and on SQLite the write lock taken)
    with sf() as s:
        pg = s.get_bind().dialect.name == "postgresql"
    if pg:
        with sf.begin() as s:  # a higher id, committed first
            s.add(Event(seq=2, **row))
    done = threading.Event()

    def roll() -> None:
        rollups.roll(sf)
        done.set()

    t = threading.Thread(target=roll)
    t.start()
    time.sleep(0.5)
    # PostgreSQL: a later row is visible, so the roll waits for the open writer. SQLite: nothing new
    # is visible (the open writer holds the only write lock), so it finds nothing to add at once.
    assert done.is_set() is not pg
    open_txn.commit()
    open_txn.close()
    t.join()
    same(c)
    with sf() as s:
        assert s.scalar(select(RollupState.rolled_id).where(RollupState.source == "events")) == s.scalar(
            select(func.max(Event.id)))

"""The collector as a fleet scheduler: 30 real-firmware devices on one radio hub, 3 connections.

Devices are firmware/main.py in MicroPython at a 64K heap (sim.devices.VirtualDevice), one
process each; BLE is bleak on bumble (gateway.ble.factory); the spool is a real SQLite spool.
Some devices boot with a log written before the test (valid sealed records, as if logged while
no gateway was around): one near full, one that overflowed and dropped its oldest segment, one
with a seq missing. Nothing stands in for BLE; the only hook is on the spool (kill a device
mid-pull). What the test shows, over four sweeps:

1. every record on every device's flash is spooled exactly once, none from elsewhere;
2. the collector never had more than `concurrency` connections open (its own counter);
3. devices found near full, or dropping records, are served first in the next sweep;
4. a device that fails is backed off (jittered, within [0.5, 1.5) of the base) while the others
   go on, then pulled first once its back-off ends (it is the longest without a pull);
5. per device state (RSSI, firmware, battery, dropped, gaps, clock offset) in memory and in the
   spool's devices table;
6. time sync: a gateway clock 5 s off is measured (offset -5000 ms) and corrected, after which
   every device's clock is within 1 s of the gateway's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway import config as gwconfig
from gateway import schedule
from gateway.ble.factory import discover
from gateway.cli import app
from gateway.collector import Collector
from gateway.session import PullResult, SessionError
from gateway.spool import DEVICE_FIELDS, Spool
from protocol import gatt, keys, record
from sim.radio import RadioHub
from tests.ble import run
from tests.vdev import Dev, tap

pytestmark = pytest.mark.timeout(600)
log = logging.getLogger(__name__)

GW = bytes.fromhex("a1a2a3a4a5a6a7a8")
N_DEVICES = 30
CONCURRENCY = 3
BACKOFF_S = 600.0  # far longer than a sweep, so "still backed off" is not a race
SKEW_S = 5.0  # the gateway's clock is this far behind in the first sweep
SEG = 256  # records per log segment (firmware/scanlog.py SEG_RECS)


class HookedSpool(Spool):
    """A real spool that runs `before_cursor` (device id) before each cursor lookup: in a pull
    that is after INFO and TIME, before READ."""

    before_cursor: Callable[[bytes], None] | None = None

    def cursor(self, device_id: bytes) -> int | None:
        if self.before_cursor is not None:
            self.before_cursor(device_id)
        return super().cursor(device_id)


async def wait_advertising(spec: str, addresses: list[str], bound: float = 180.0) -> None:
    """Scan until every address advertises (30 interpreters booting on 2 cores take a while)."""
    want = {a.upper() for a in addresses}
    seen: set[str] = set()
    async with asyncio.timeout(bound):
        while not want <= seen:
            found = await discover(spec, 0.5, service_uuids=[gatt.SERVICE])
            seen |= {a.upper() for a, v in found.items() if gatt.SERVICE in v[1].service_uuids}


def prefill(d: Dev, seqs: list[int], epoch: int = 1) -> None:
    """Write a log the device will find at boot: sealed tap records with these seqs, in
    segment files of 256 as firmware/scanlog.py writes them (it adds its BOOT record after)."""
    recs = [record.make(d.rec_key, d.device_id, record.KIND_TAP, 0, epoch, s, 100 + s, os.urandom(8))
            for s in seqs]
    for n, i in enumerate(range(0, len(recs), SEG), start=1):
        (d.flash / f"log.{n}").write_bytes(b"".join(recs[i:i + SEG]))


class Fleet:
    def __init__(self, hub: RadioHub, tmp: Path) -> None:
        self.spec = "bumble:" + hub.hci_spec
        self.devs = [Dev(tmp / f"dev{i:02d}", hub.dev_addr) for i in range(N_DEVICES)]
        self.near, self.overflowed, self.gappy, self.victim = (self.devs[i] for i in (7, 11, 13, 17))
        prefill(self.near, list(range(1, 3001)))  # 3000 of 4096: near full
        prefill(self.overflowed, list(range(1, 4097)))  # full: its BOOT drops the oldest 256
        prefill(self.gappy, [s for s in range(1, 21) if s != 11])  # seq 11 never made it
        gwconfig.generate_key(tmp / "gateway.key")
        allow = [{"id": d.device_id.hex(), "key": keys.gateway_key(d.key, GW).hex()} for d in self.devs]
        raw: dict[str, object] = {
            "gateway_id": GW.hex(), "private_key": "gateway.key", "spool": "spool.sqlite",
            "ble": {"backend": self.spec, "scan_s": 1.5, "connect_timeout_s": 10.0, "op_timeout_s": 10.0,
                    "session_timeout_s": 60.0, "concurrency": CONCURRENCY, "backoff_base_s": BACKOFF_S,
                    "backoff_max_s": BACKOFF_S},
            "devices": allow,
        }
        self.cfg = gwconfig.parse(raw, tmp)
        # The same, for `mcode gateway status` (BLE settings do not matter to it).
        self.toml = tmp / "gateway.toml"
        self.toml.write_text(
            f'gateway_id = "{GW.hex()}"\nprivate_key = "gateway.key"\nspool = "spool.sqlite"\n'
            + "".join(f'[[devices]]\nid = "{d["id"]}"\nkey = "{d["key"]}"\n' for d in allow))
        self.spool = HookedSpool(self.cfg.spool_path, GW, self.cfg.load_private_key())
        self.skew = 0.0  # added to the gateway's wall clock
        self.skip = 0.0  # added to its monotonic clock: lets the test end a back-off
        self.collector = Collector(self.cfg, self.spool, clock=lambda: time.time() + self.skew,
                                   monotonic=lambda: time.monotonic() + self.skip)
        self.history: dict[bytes, dict[int, bytes]] = {d.device_id: {} for d in self.devs}

    def start(self) -> Fleet:
        self.started_at = time.monotonic()
        for d in self.devs:  # each a process: they boot in parallel
            d.start()
        return self

    def stop(self) -> None:
        for d in self.devs:
            d.vd.stop()
        self.spool.close()

    def hexes(self, ds: list[Dev]) -> set[str]:
        return {d.device_id.hex() for d in ds}

    def sample(self) -> None:
        """Remember every record seen on any device's flash (acked segments get deleted)."""
        for d in self.devs:
            for r in d.log_records():
                self.history[d.device_id].setdefault(record.seq_of(r), r)

    def spooled(self, d: Dev) -> list[bytes]:
        return [bytes.fromhex(r["raw"]) for r in self.spool.iter_records()
                if r["device_id"] == d.device_id.hex()]

    def flash(self, d: Dev) -> list[bytes]:
        h = self.history[d.device_id]
        return [h[s] for s in sorted(h)]

    async def sweep(self) -> tuple[dict[str, PullResult], list[BaseException], list[str], float]:
        """One sweep: successes by device hex, failures, pull start order, seconds taken."""
        self.sample()
        self.collector.started.clear()
        t0 = time.monotonic()
        results = await asyncio.wait_for(self.collector.sweep(), 300)
        took = time.monotonic() - t0
        self.sample()
        ok = {r.device_id.hex(): r for r in results if isinstance(r, PullResult)}
        return ok, [r for r in results if not isinstance(r, PullResult)], list(self.collector.started), took


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with RadioHub() as hub:
        f = Fleet(hub, tmp_path)
        try:
            yield f.start()
        finally:
            f.stop()


def test_thirty_devices_fair_bounded_prioritised_and_in_time(fleet: Fleet) -> None:
    f = fleet
    col = f.collector
    victim = f.victim
    armed = [True]

    def before_cursor(device_id: bytes) -> None:
        if device_id == victim.device_id and armed[0]:
            armed[0] = False
            victim.vd.kill()  # connected, INFO read, clock set: now the power goes

    f.spool.before_cursor = before_cursor
    timings: dict[str, float] = {}

    async def main() -> None:
        await wait_advertising(f.spec, [d.address for d in f.devs])
        timings["boot"] = time.monotonic() - f.started_at  # first process started to all advertising
        for d in f.devs[:4]:
            for _ in range(2):
                await tap(f.spec, d.address)

        # Sweep 1, the gateway's clock 5 s behind: everyone but the victim pulled.
        f.skew = -SKEW_S
        m0 = col.monotonic()
        ok, errors, started, timings["sweep1"] = await f.sweep()
        m1 = col.monotonic()
        assert not armed[0]
        assert set(ok) == f.hexes(f.devs) - f.hexes([victim])
        assert len(errors) == 1 and isinstance(errors[0], SessionError)
        assert sorted(started) == sorted(f.hexes(f.devs))
        st = col.devices[victim.device_id.hex()]
        assert st.failures == 1 and st.last_ok is None
        assert m0 + 0.5 * BACKOFF_S <= st.next_try <= m1 + 1.5 * BACKOFF_S
        assert all(col.devices[h].clock_offset_ms is None for h in ok)  # clocks were unset
        ov, gp = col.devices[f.overflowed.device_id.hex()], col.devices[f.gappy.device_id.hex()]
        assert (ov.dropped, ov.gaps) == (256, 0)  # its gap is its own drop, accounted
        assert (gp.dropped, gp.gaps, gp.gaps_by_epoch) == (0, 1, {1: 1})

        # Sweep 2, clock right: the victim is back on but backed off; the two devices found
        # near full or dropping go first; every clock was 5 s behind.
        f.skew = 0.0
        victim.start()
        await wait_advertising(f.spec, [victim.address])
        ok, errors, started, timings["sweep2"] = await f.sweep()
        assert errors == [] and set(ok) == f.hexes(f.devs) - f.hexes([victim])
        assert set(started[:2]) == f.hexes([f.near, f.overflowed])
        offsets = {h: col.devices[h].clock_offset_ms for h in ok}
        assert all(o is not None and abs(o + SKEW_S * 1000) < 1000 for o in offsets.values()), offsets

        # Sweep 3, the back-off over: the victim, longest without a pull, goes first.
        # The two urgent ones were emptied and log slowly since: no longer urgent.
        f.skip += 1.5 * BACKOFF_S
        assert not any(schedule.is_urgent(col.devices[h].watch, col.monotonic(), col.policy)
                       for h in f.hexes([f.near, f.overflowed]))
        ok, errors, started, timings["sweep3"] = await f.sweep()
        assert errors == [] and set(ok) == f.hexes(f.devs)
        assert started[0] == victim.device_id.hex()

        # Sweep 4: every device's clock is within a second of the gateway's.
        ok, errors, started, timings["sweep4"] = await f.sweep()
        assert errors == [] and set(ok) == f.hexes(f.devs)
        offsets = {h: col.devices[h].clock_offset_ms for h in ok}
        assert all(o is not None and abs(o) < 1000 for o in offsets.values()), offsets

        assert col.peak_connections == CONCURRENCY  # reached, never passed
        assert col.connections == 0

    run(main())
    log.info("fleet of %d, seconds: %s", N_DEVICES, {k: round(v, 1) for k, v in timings.items()})

    # Every record on every device's flash spooled exactly once, in seq order.
    for d in f.devs:
        got = f.spooled(d)
        assert got == f.flash(d), d.device_id.hex()
        assert len({record.seq_of(r) for r in got}) == len(got)
    assert record.seq_of(f.flash(f.overflowed)[0]) == 257  # seqs 1..256 dropped at its boot
    # The state the collector keeps, mirrored into the spool.
    status = f.spool.device_status()
    for d in f.devs:
        st = col.devices[d.device_id.hex()]
        assert st.rssi is not None and st.fw == 1 and st.battery_low is False
        assert st.backlog == 0 and st.failures == 0
        assert status[d.device_id.hex()] == {k: getattr(st, k) for k in DEVICE_FIELDS}

    # `mcode gateway status` shows them.
    r = CliRunner().invoke(app, ["status", "--config", str(f.toml), "--json"])
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)["devices"]
    g = shown[f.gappy.device_id.hex()]
    assert (g["gaps"], g["dropped"], g["fw"], g["battery_low"]) == (1, 0, 1, 0)
    assert shown[f.overflowed.device_id.hex()]["dropped"] == 256
    assert all(abs(v["clock_offset_ms"]) < 1000 and v["rssi"] is not None for v in shown.values())
    r = CliRunner().invoke(app, ["status", "--config", str(f.toml)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "clock ms" in r.output and "gaps" in r.output

"""The gateway's Collector pulling real-firmware virtual devices over the real radio hub.

Devices are firmware/main.py in MicroPython (sim.devices.VirtualDevice); the spool is a real
SQLite gateway.spool.Spool; BLE is bleak on bumble through gateway.ble.factory. The only test
hooks are on the spool (a subclass that looks at the device's flash before committing, or
kills a device at a chosen moment); nothing stands in for BLE."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import config as gwconfig
from gateway.ble.factory import make_client
from gateway.collector import Collector
from gateway.session import PullResult, SessionError
from gateway.spool import Spool
from protocol import gatt, keys, record
from sim.radio import RadioHub
from tests.ble import run
from tests.vdev import WAIT, Dev, tap, wait_advertising

pytestmark = pytest.mark.timeout(120)

GW = bytes.fromhex("a1a2a3a4a5a6a7a8")


class HookedSpool(Spool):
    """A real spool that runs `before_add` (device id, records) before each commit and
    `before_cursor` (device id) before each cursor lookup."""

    before_add: Callable[[bytes, list[bytes]], None] | None = None
    before_cursor: Callable[[bytes], None] | None = None

    def add_records(self, device_id: bytes, records: Iterable[bytes]) -> int:
        recs = [bytes(r) for r in records]
        if self.before_add is not None:
            self.before_add(device_id, recs)
        return super().add_records(device_id, recs)

    def cursor(self, device_id: bytes) -> int | None:
        if self.before_cursor is not None:
            self.before_cursor(device_id)
        return super().cursor(device_id)


@pytest.fixture
def hub() -> Iterator[RadioHub]:
    with RadioHub() as h:
        yield h


class Rig:
    def __init__(self, hub: RadioHub, tmp: Path, n: int, outsider_like: int | None = None) -> None:
        self.spec = "bumble:" + hub.hci_spec
        self.devs = [Dev(tmp / f"dev{i}", hub.dev_addr) for i in range(n)]
        self.outsider: Dev | None = None
        if outsider_like is not None:
            # Not in the allowlist, but its name (mc-<last 4 hex of the id>) is an allowed one's.
            like = self.devs[outsider_like].device_id
            self.outsider = Dev(tmp / "outsider", hub.dev_addr, device_id=os.urandom(6) + like[6:])
        gwconfig.generate_key(tmp / "gateway.key")
        raw: dict[str, object] = {
            "gateway_id": GW.hex(), "private_key": "gateway.key", "spool": "spool.sqlite",
            "ble": {"backend": self.spec, "scan_s": 1.0, "connect_timeout_s": 5.0, "op_timeout_s": 5.0,
                    "session_timeout_s": 30.0, "concurrency": 2, "backoff_base_s": 0.2,
                    "backoff_max_s": 0.5},
            "devices": [{"id": d.device_id.hex(), "key": keys.gateway_key(d.key, GW).hex()}
                        for d in self.devs],
        }
        self.cfg = gwconfig.parse(raw, tmp)
        self.spool = HookedSpool(self.cfg.spool_path, GW, self.cfg.load_private_key())
        self.collector = Collector(self.cfg, self.spool)
        self.errors: list[BaseException] = []

    def all_devs(self) -> list[Dev]:
        return self.devs + ([self.outsider] if self.outsider else [])

    def start(self) -> Rig:
        for d in self.all_devs():
            d.start()
        return self

    def stop(self) -> None:
        for d in self.all_devs():
            d.vd.stop()
        self.spool.close()

    def by_id(self, device_id: bytes) -> Dev:
        return next(d for d in self.all_devs() if d.device_id == device_id)

    def spooled(self, d: Dev) -> list[bytes]:
        return [bytes.fromhex(r["raw"]) for r in self.spool.iter_records()
                if r["device_id"] == d.device_id.hex()]

    async def info(self, d: Dev) -> tuple[Any, ...]:
        async with make_client(self.spec, d.address, timeout=WAIT) as client:
            return gatt.unpack_info(bytes(await client.read_gatt_char(gatt.INFO)))

    async def sweep(self) -> dict[bytes, PullResult]:
        """One sweep; the pulls that succeeded, by device id. Bounded, so a stall fails."""
        results = await asyncio.wait_for(self.collector.sweep(), 60)
        self.errors = [r for r in results if not isinstance(r, PullResult)]
        return {r.device_id: r for r in results if isinstance(r, PullResult)}


@pytest.fixture
def rig3(hub: RadioHub, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(hub, tmp_path, 3, outsider_like=0).start()
    yield r
    r.stop()


def test_sweeps_spool_every_record_once_and_ack_after_commit(rig3: Rig) -> None:
    rig = rig3
    assert rig.outsider is not None
    outsider = rig.outsider
    seen_at_commit: list[tuple[bytes, int, int]] = []  # device, acked on its flash, top seq

    def before_add(device_id: bytes, recs: list[bytes]) -> None:
        seen_at_commit.append((device_id, rig.by_id(device_id).flash_acked(),
                               max(record.seq_of(r) for r in recs)))

    rig.spool.before_add = before_add

    async def main() -> None:
        await wait_advertising(rig.spec, [d.address for d in rig.all_devs()])
        for i, d in enumerate(rig.devs):
            for _ in range(i + 1):
                await tap(rig.spec, d.address)
        await tap(rig.spec, outsider.address)

        first = await rig.sweep()
        assert set(first) == {d.device_id for d in rig.devs}
        for d in rig.devs:
            spooled = rig.spooled(d)
            assert spooled == d.log_records()  # all of them, in order, once
            head = record.seq_of(spooled[-1])
            assert [record.seq_of(r) for r in spooled] == list(range(1, head + 1))
            info = await rig.info(d)
            assert info[3] == info[4] == head == rig.spool.cursor(d.device_id)
            assert first[d.device_id].acked == head
        # The device had acked nothing when its records were being committed.
        assert sorted(x[0] for x in seen_at_commit) == sorted(d.device_id for d in rig.devs)
        assert all(acked == 0 < top for _, acked, top in seen_at_commit)

        # The outsider (same advertised name as devs[0]) was not acked, nor spooled, and did not
        # make the collector back off from the real devs[0].
        oi = await rig.info(outsider)
        assert oi[4] == 0 and outsider.flash_acked() == 0 and oi[7] == 0  # no command accepted
        assert rig.spooled(outsider) == []
        assert [getattr(e, "reason", e) for e in rig.errors] == ["not_allowed"]
        st = rig.collector.devices[rig.devs[0].device_id.hex()]
        assert (st.failures, st.last_error, st.next_try) == (0, None, 0.0)

        # New taps: the next sweep pulls only those.
        seen_at_commit.clear()
        heads = {d.device_id: (await rig.info(d))[3] for d in rig.devs}
        new = {d.device_id: [await tap(rig.spec, d.address) for _ in range(2)] for d in rig.devs[:2]}
        second = await rig.sweep()
        assert set(second) == {d.device_id for d in rig.devs}
        for d in rig.devs:
            r = second[d.device_id]
            got = new.get(d.device_id, [])
            assert r.received == r.spooled == len(got)
            if got:
                assert r.read_from == heads[d.device_id] + 1
                assert rig.spooled(d)[-len(got):] == [rc.raw for rc in got]
            assert rig.spooled(d) == d.log_records()
            info = await rig.info(d)
            assert info[4] == info[3] == rig.spool.cursor(d.device_id)
        assert all(acked < top for _, acked, top in seen_at_commit)
        assert (await rig.info(outsider))[4] == 0

    run(main())


def test_device_killed_mid_pull_does_not_stall_and_is_pulled_after_restart(hub: RadioHub,
                                                                          tmp_path: Path) -> None:
    rig = Rig(hub, tmp_path, 3).start()
    victim = rig.devs[1]
    armed = [True]

    def before_cursor(device_id: bytes) -> None:
        # Called by the session after INFO and TIME, before READ: the device is connected.
        if device_id == victim.device_id and armed[0]:
            armed[0] = False
            victim.vd.kill()

    rig.spool.before_cursor = before_cursor

    async def main() -> None:
        await wait_advertising(rig.spec, [d.address for d in rig.devs])
        for d in rig.devs:
            for _ in range(3):
                await tap(rig.spec, d.address)

        results = await asyncio.wait_for(rig.collector.sweep(), 60)
        assert not armed[0] and not victim.vd.alive()
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], SessionError)
        ok = {r.device_id for r in results if isinstance(r, PullResult)}
        assert ok == {d.device_id for d in rig.devs if d is not victim}
        assert rig.spooled(victim) == []  # killed before READ: nothing of it spooled
        assert victim.flash_acked() == 0
        before = victim.log_records()

        # Power back on, same flash: a new epoch, seq carrying on.
        victim.start()
        await wait_advertising(rig.spec, [victim.address])
        await tap(rig.spec, victim.address)
        async with asyncio.timeout(WAIT):  # the failed pull's back-off is short here
            while True:
                got = await rig.sweep()
                if victim.device_id in got:
                    break
        after = victim.log_records()
        assert after[:len(before)] == before
        spooled = rig.spooled(victim)
        assert spooled == after  # every record, once
        assert [record.seq_of(r) for r in spooled] == list(range(1, len(after) + 1))
        epochs = [record.unpack(r)[3] for r in spooled]
        assert epochs[0] == 1 and epochs[-1] == 2
        info = await rig.info(victim)
        assert info[2] == 2 and info[3] == info[4] == len(after) == rig.spool.cursor(victim.device_id)
        for d in rig.devs:  # the others: nothing duplicated by the extra sweeps
            assert rig.spooled(d) == d.log_records()

    try:
        run(main())
    finally:
        rig.stop()

"""BLE collection: find allowlisted displays, pull each one's log (gateway.session): a fleet
scheduler with at most `ble.concurrency` connections at once, the order and back-off of
gateway.schedule (near-full logs first, then oldest pull first; jittered back-off for failures),
timeouts on everything, and per device what the gateway knows of it (DeviceState, mirrored into
the spool's devices table for `mcode gateway status`).

Scanners and clients come from a factory (`gateway.ble.factory` by default: `make_scanner(spec,
**kw)` and `make_client(spec, device_or_address, **kw)` returning bleak objects), so the same
code runs on a real adapter ("default") or a virtual bumble radio ("bumble:tcp-client:HOST:PORT").
Only bleak's public API is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway import schedule
from gateway.config import Device, GatewayConfig
from gateway.session import ConfigWrites, PullResult, Session, SessionError
from gateway.spool import DEVICE_FIELDS, Spool
from protocol import gatt

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^mc-([0-9a-fA-F]{4})$")


def default_ble_factory() -> Any:
    """gateway.ble.factory, imported only when BLE is actually used."""
    return importlib.import_module("gateway.ble.factory")


@dataclass
class DeviceState:
    """What the gateway knows of one device, in memory; the fields named in spool.DEVICE_FIELDS
    are mirrored into the spool. Times are unix seconds unless marked monotonic."""

    last_seen: float | None = None  # last advertisement
    last_ok: float | None = None  # last complete pull
    head_seq: int | None = None
    acked_seq: int | None = None
    epoch: int | None = None
    backlog: int | None = None  # records on the device no gateway has acked
    failures: int = 0  # consecutive
    last_error: str | None = None
    rssi: int | None = None  # dBm, from the last advertisement
    battery_low: bool | None = None  # INFO status bit STATUS_BATTERY_LOW
    fw: int | None = None  # firmware version, from INFO
    clock_offset_ms: int | None = None  # device clock minus ours at the last TIME; None: it was unset
    dropped: int | None = None  # records the device dropped unacked (log full), from INFO
    gaps: int = 0  # seqs missing in what we spooled, not explained by drops (should stay 0)
    gaps_by_epoch: dict[int, int] = field(default_factory=dict)  # the same, by the epoch after a gap
    next_try: float = 0.0  # monotonic; back-off
    watch: schedule.LogWatch = field(default_factory=schedule.LogWatch)  # for priority


@dataclass(frozen=True)
class Candidate:
    target: Any  # a bleak BLEDevice (or an address string)
    address: str
    name: str | None
    device_hex: str | None  # guessed from the name or learned from INFO; INFO is authoritative
    rssi: int | None = None  # dBm, from the advertisement


class Collector:
    def __init__(self, cfg: GatewayConfig, spool: Spool, ble: Any = None,
                 clock: Callable[[], float] = time.time, config_writes: ConfigWrites | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.spool = spool
        self._ble = ble
        self.clock = clock  # wall clock: TIME sync and status
        self.monotonic = monotonic  # back-off and fill-rate estimates
        b = cfg.ble
        self.policy = schedule.Policy(capacity=b.log_capacity, near_full=b.near_full,
                                      backoff_base_s=b.backoff_base_s, backoff_max_s=b.backoff_max_s)
        self.config_writes = config_writes  # cloud-sealed device config writes to deliver
        self.allow: dict[bytes, Device] = {}
        self._by_suffix: dict[str, list[str]] = {}
        self.devices: dict[str, DeviceState] = {}
        self._addr_state: dict[str, DeviceState] = {}  # back-off for addresses not yet identified
        self._addr_to_id: dict[str, str] = {}
        self._not_ours: set[str] = set()  # addresses whose INFO named a device not in the allowlist
        self.set_devices(cfg.devices)
        self._sem = asyncio.Semaphore(max(1, cfg.ble.concurrency))
        self._busy: set[str] = set()  # addresses being pulled now
        self.connections = 0  # BLE connections open or being opened now
        self.peak_connections = 0  # the most at once so far: never above ble.concurrency
        self.started: deque[str] = deque(maxlen=1024)  # device (or address) per pull, in start order

    def set_devices(self, devices: Iterable[Device]) -> None:
        """Replace the allowlist (the cloud's config, live): new devices start afresh, dropped ones
        are forgotten; a pull already running finishes with the list it started with."""
        devs = tuple(devices)
        self.allow = {d.id: d for d in devs}
        self._by_suffix = {}
        for d in devs:
            self._by_suffix.setdefault(d.hex[-4:], []).append(d.hex)
        self.devices = {d.hex: self.devices.get(d.hex) or DeviceState() for d in devs}
        self._addr_to_id = {a: h for a, h in self._addr_to_id.items() if h in self.devices}
        self._not_ours.clear()  # an address refused before may be a device allowed now

    @property
    def ble(self) -> Any:
        if self._ble is None:
            self._ble = default_ble_factory()
        return self._ble

    # -- discovery ------------------------------------------------------------------------

    async def discover(self) -> list[Candidate]:
        """Scan for scan_s; return advertisers of the mcode service that may be allowlisted."""
        scanner = self.ble.make_scanner(self.cfg.ble.backend, service_uuids=[gatt.SERVICE])
        async with asyncio.timeout(self.cfg.ble.scan_s + self.cfg.ble.op_timeout_s):
            async with scanner:
                await asyncio.sleep(self.cfg.ble.scan_s)
            found = dict(scanner.discovered_devices_and_advertisement_data)
        out: list[Candidate] = []
        now = self.clock()
        for address, (dev, adv) in found.items():
            uuids = {u.lower() for u in (adv.service_uuids or [])}
            if gatt.SERVICE not in uuids:
                continue
            name = adv.local_name or getattr(dev, "name", None)
            dev_hex = self._addr_to_id.get(address)
            if dev_hex is None and name and address not in self._not_ours:
                m = NAME_RE.match(name)
                if m:
                    ids = self._by_suffix.get(m.group(1).lower(), [])
                    if not ids:
                        continue  # an mcode display, but not one of ours
                    dev_hex = ids[0] if len(ids) == 1 else None
            rssi = getattr(adv, "rssi", None)  # bleak's AdvertisementData has it; a stand-in may not
            rssi = rssi if isinstance(rssi, int) else None
            if dev_hex is not None and dev_hex in self.devices:
                st = self.devices[dev_hex]
                st.last_seen, st.rssi = now, rssi
            out.append(Candidate(dev, address, name, dev_hex, rssi))
        return out

    # -- pulling --------------------------------------------------------------------------

    def _state_for(self, c: Candidate) -> DeviceState:
        if c.device_hex is not None and c.device_hex in self.devices:
            return self.devices[c.device_hex]
        return self._addr_state.setdefault(c.address, DeviceState())

    def due(self, c: Candidate) -> bool:
        return c.address not in self._busy and self.monotonic() >= self._state_for(c).next_try

    def order_due(self, cands: Iterable[Candidate]) -> list[Candidate]:
        """The due candidates in the order gateway.schedule gives them."""
        by_addr = {c.address: c for c in cands if self.due(c)}
        due = [schedule.Due(a, self._state_for(c).last_ok, self._state_for(c).watch)
               for a, c in by_addr.items()]
        return [by_addr[str(d.key)] for d in schedule.order(due, self.monotonic(), self.policy)]

    async def sweep(self) -> list[PullResult | BaseException]:
        """One pass: discover, then pull every due device in schedule order, `concurrency` at a
        time: each worker takes the next device as soon as its last pull ends."""
        try:
            cands = await self.discover()
        except Exception as e:
            log.warning("BLE scan failed: %r", e)
            return [e]
        todo = deque(self.order_due(cands))
        results: list[PullResult | BaseException] = []

        async def worker() -> None:
            while todo:
                c = todo.popleft()
                try:
                    results.append(await self.pull(c))
                except Exception as e:  # recorded and backed off in pull(); the sweep goes on
                    results.append(e)

        await asyncio.gather(*(worker() for _ in range(min(len(todo), max(1, self.cfg.ble.concurrency)))))
        return results

    async def pull(self, c: Candidate) -> PullResult:
        """Connect, run one Session, disconnect; updates device state and back-off either way."""
        async with self._sem:
            self._busy.add(c.address)
            self.started.append(c.device_hex or c.address)
            try:
                res = await asyncio.wait_for(self._pull(c), self.cfg.ble.session_timeout_s)
            except BaseException as e:
                err = e if isinstance(e, SessionError) else SessionError(
                    "timeout" if isinstance(e, TimeoutError) else type(e).__name__, str(e))
                await self._failed(c, err)
                if isinstance(e, asyncio.CancelledError):
                    raise
                raise err from e
            finally:
                self._busy.discard(c.address)
        await self._succeeded(c, res)
        return res

    async def _pull(self, c: Candidate) -> PullResult:
        client = self.ble.make_client(self.cfg.ble.backend, c.target, timeout=self.cfg.ble.connect_timeout_s)
        # Counted from the connect attempt (a pending connect holds the controller too) to the end
        # of the disconnect.
        self.connections += 1
        self.peak_connections = max(self.peak_connections, self.connections)
        try:
            try:
                await asyncio.wait_for(client.connect(), self.cfg.ble.connect_timeout_s)
            except TimeoutError:
                raise SessionError("connect_timeout", c.address) from None
            try:
                session = Session(client, self.allow, self.cfg.gateway_id, self.spool, self.cfg.ble,
                                  self.clock, config_writes=self.config_writes)
                try:
                    return await session.run()
                finally:
                    self._observe(c, session)  # what INFO said counts even if the pull then failed
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(client.disconnect()), self.cfg.ble.op_timeout_s)
        finally:
            self.connections -= 1

    def _observe(self, c: Candidate, session: Session) -> None:
        """Take in what one session saw of a device, whether or not the pull then failed: INFO's
        figures, the fill estimate and the seq gaps in what it spooled."""
        res = session.result
        if res is None or res.device_id.hex() not in self.devices:
            return
        info, dev_hex = res.info, res.device_id.hex()
        st = self.devices[dev_hex]
        st.head_seq, st.acked_seq, st.epoch = info.head_seq, info.acked_seq, info.epoch
        st.backlog = max(0, info.head_seq - info.acked_seq)
        st.dropped, st.fw = info.dropped, info.fw
        st.battery_low = bool(info.status & gatt.STATUS_BATTERY_LOW)
        if c.rssi is not None:
            st.rssi = c.rssi
        st.watch.look(self.monotonic(), info.head_seq, info.acked_seq, info.dropped)
        if st.watch.new_drops:
            log.warning("device %s dropped %d records unacked, its log full (%d in all)", dev_hex,
                        st.watch.new_drops, info.dropped)
        if not res.gaps:
            return
        lost = st.watch.unexplained_gaps(res.gaps, res.read_from)
        for epoch, n in lost.items():
            st.gaps_by_epoch[epoch] = st.gaps_by_epoch.get(epoch, 0) + n
            st.gaps += n
        where = ", ".join(f"{b + 1}..{a - 1} (epoch {e})" for e, b, a in res.gaps)
        if lost:
            # A seq the device burnt (a failed flash write) or a record lost between flash and
            # spool: it should never happen, so it is loud.
            log.error("DEVICE %s SEQ GAP: %d seqs missing in what was spooled: %s", dev_hex,
                      sum(lost.values()), where)
        else:
            log.warning("device %s: seqs %s not read, dropped by the device", dev_hex, where)

    async def _failed(self, c: Candidate, err: SessionError) -> None:
        if err.reason == "not_allowed":
            # The name only guessed which device this is; INFO says it is none of ours. Back off
            # (and report) by address, not on the allowlisted device whose name it shares.
            self._not_ours.add(c.address)
            c = Candidate(c.target, c.address, c.name, None)
        st = self._state_for(c)
        st.failures += 1
        st.last_error = str(err)[:200]
        st.next_try = self.monotonic() + schedule.backoff(st.failures, self.policy)
        loud = err.reason in ("bad_tag", "not_allowed", "log_regressed")
        level = logging.ERROR if loud else logging.WARNING
        log.log(level, "pull of %s (%s) failed (%d in a row): %s", c.device_hex or "?", c.address,
                st.failures, err)
        if c.device_hex is not None and c.device_hex in self.devices:
            await self._persist(c.device_hex)

    async def _succeeded(self, c: Candidate, res: PullResult) -> None:
        dev_hex = res.device_id.hex()
        self._addr_to_id[c.address] = dev_hex
        self._not_ours.discard(c.address)
        self._addr_state.pop(c.address, None)
        if dev_hex not in self.devices:
            return  # dropped from the allowlist while it was being pulled
        st = self.devices[dev_hex]
        st.last_seen = st.last_ok = self.clock()
        st.head_seq = res.head_seq
        st.acked_seq = res.acked if res.acked is not None else res.info.acked_seq
        st.epoch = res.info.epoch
        st.backlog = res.backlog
        st.watch.acked_through(st.acked_seq)
        if res.time_set:
            st.clock_offset_ms = res.clock_offset_ms
        st.failures = 0
        st.last_error = "; ".join(res.notes) or None
        st.next_try = 0.0
        log.info("pulled %s: read from %d, %d records (%d new), head %d, acked %s", dev_hex, res.read_from,
                 res.received, res.spooled, res.head_seq, st.acked_seq)
        await self._persist(dev_hex)

    async def _persist(self, dev_hex: str) -> None:
        st = self.devices[dev_hex]
        fields = {k: getattr(st, k) for k in DEVICE_FIELDS if hasattr(st, k)}
        try:
            await asyncio.to_thread(self.spool.set_device_status, bytes.fromhex(dev_hex), **fields)
        except Exception as e:  # status is bookkeeping: never let it fail a pull
            log.warning("device status not saved: %r", e)

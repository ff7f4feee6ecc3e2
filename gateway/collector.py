"""BLE collection: find allowlisted displays, pull each one's log (gateway.session), with bounded
concurrency, timeouts on everything and jittered back-off per device.

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
import random
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from gateway.config import GatewayConfig
from gateway.session import PullResult, Session, SessionError
from gateway.spool import Spool
from protocol import gatt

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^mc-([0-9a-fA-F]{4})$")


def default_ble_factory() -> Any:
    """gateway.ble.factory, imported only when BLE is actually used."""
    return importlib.import_module("gateway.ble.factory")


@dataclass
class DeviceState:
    """What the gateway knows of one device, in memory and mirrored into the spool."""

    last_seen: float | None = None  # last advertisement
    last_ok: float | None = None  # last complete pull
    head_seq: int | None = None
    acked_seq: int | None = None
    epoch: int | None = None
    backlog: int | None = None  # records on the device no gateway has acked
    failures: int = 0  # consecutive
    last_error: str | None = None
    next_try: float = 0.0  # monotonic; back-off


@dataclass(frozen=True)
class Candidate:
    target: Any  # a bleak BLEDevice (or an address string)
    address: str
    name: str | None
    device_hex: str | None  # guessed from the name or learned from INFO; INFO is authoritative


class Collector:
    def __init__(self, cfg: GatewayConfig, spool: Spool, ble: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.spool = spool
        self._ble = ble
        self.clock = clock
        self.allow = {d.id: d for d in cfg.devices}
        self._by_suffix: dict[str, list[str]] = {}
        for d in cfg.devices:
            self._by_suffix.setdefault(d.hex[-4:], []).append(d.hex)
        self.devices: dict[str, DeviceState] = {d.hex: DeviceState() for d in cfg.devices}
        self._addr_state: dict[str, DeviceState] = {}  # back-off for addresses not yet identified
        self._addr_to_id: dict[str, str] = {}
        self._not_ours: set[str] = set()  # addresses whose INFO named a device not in the allowlist
        self._sem = asyncio.Semaphore(max(1, cfg.ble.concurrency))
        self._busy: set[str] = set()  # addresses being pulled now

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
            if dev_hex is not None and dev_hex in self.devices:
                self.devices[dev_hex].last_seen = now
            out.append(Candidate(dev, address, name, dev_hex))
        return out

    # -- pulling --------------------------------------------------------------------------

    def _state_for(self, c: Candidate) -> DeviceState:
        if c.device_hex is not None and c.device_hex in self.devices:
            return self.devices[c.device_hex]
        return self._addr_state.setdefault(c.address, DeviceState())

    def due(self, c: Candidate) -> bool:
        return c.address not in self._busy and time.monotonic() >= self._state_for(c).next_try

    async def sweep(self) -> list[PullResult | BaseException]:
        """One pass: discover, then pull every due device (at most `concurrency` at a time)."""
        try:
            cands = await self.discover()
        except Exception as e:
            log.warning("BLE scan failed: %r", e)
            return [e]
        todo = [c for c in cands if self.due(c)]
        return list(await asyncio.gather(*(self.pull(c) for c in todo), return_exceptions=True))

    async def pull(self, c: Candidate) -> PullResult:
        """Connect, run one Session, disconnect; updates device state and back-off either way."""
        async with self._sem:
            self._busy.add(c.address)
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
        try:
            await asyncio.wait_for(client.connect(), self.cfg.ble.connect_timeout_s)
        except TimeoutError:
            raise SessionError("connect_timeout", c.address) from None
        try:
            session = Session(client, self.allow, self.cfg.gateway_id, self.spool, self.cfg.ble, self.clock)
            return await session.run()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(client.disconnect()), self.cfg.ble.op_timeout_s)

    def _backoff(self, failures: int) -> float:
        b = self.cfg.ble
        return min(b.backoff_max_s, b.backoff_base_s * 2 ** (failures - 1)) * random.uniform(0.5, 1.5)

    async def _failed(self, c: Candidate, err: SessionError) -> None:
        if err.reason == "not_allowed":
            # The name only guessed which device this is; INFO says it is none of ours. Back off
            # (and report) by address, not on the allowlisted device whose name it shares.
            self._not_ours.add(c.address)
            c = Candidate(c.target, c.address, c.name, None)
        st = self._state_for(c)
        st.failures += 1
        st.last_error = str(err)[:200]
        st.next_try = time.monotonic() + self._backoff(st.failures)
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
        st = self.devices[dev_hex]
        st.last_seen = st.last_ok = self.clock()
        st.head_seq = res.head_seq
        st.acked_seq = res.acked if res.acked is not None else res.info.acked_seq
        st.epoch = res.info.epoch
        st.backlog = res.backlog
        st.failures = 0
        st.last_error = "; ".join(res.notes) or None
        st.next_try = 0.0
        log.info("pulled %s: read from %d, %d records (%d new), head %d, acked %s", dev_hex, res.read_from,
                 res.received, res.spooled, res.head_seq, st.acked_seq)
        await self._persist(dev_hex)

    async def _persist(self, dev_hex: str) -> None:
        fields = asdict(self.devices[dev_hex])
        fields.pop("next_try")
        try:
            await asyncio.to_thread(self.spool.set_device_status, bytes.fromhex(dev_hex), **fields)
        except Exception as e:  # status is bookkeeping: never let it fail a pull
            log.warning("device status not saved: %r", e)

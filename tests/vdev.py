"""Real-firmware virtual devices on a real radio hub, for the radio integration tests.

Each device is sim.devices.VirtualDevice: firmware/main.py in the MicroPython unix port, on
the hub through sim/micropython/bluetooth.py. Nothing here stands in for BLE.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from gateway.ble.factory import ble_session, discover
from protocol import gatt, keys
from protocol.hmac256 import HmacKey
from sim.devices import VirtualDevice
from sim.phone import Phone, Receipt

T = TypeVar("T")
WAIT = 20.0  # bound on any one wait, so a failure fails instead of hanging


def device_config(device_id: bytes, key: bytes, slot: int = 0, period: int = 3600) -> dict[str, Any]:
    return {"device_id": device_id.hex(), "key": key.hex(), "base": "4919", "slot": slot, "slots": 8,
            "digits": 2, "period": period, "label": "Oat milk 1L", "fw": 1}


def address_of(device_id: bytes) -> str:
    """The random static address sim.devices gives a device (the shim sets the two top bits)."""
    raw = bytearray(device_id[2:8])
    raw[0] |= 0xC0
    return ":".join(f"{b:02X}" for b in raw)


class Dev:
    """One provisioned virtual device and its secrets."""

    def __init__(self, flash: Path, radio: str, device_id: bytes | None = None) -> None:
        self.device_id = device_id or os.urandom(8)
        self.key = os.urandom(32)
        self.rec_key = HmacKey(keys.record_key(self.key))
        self.vd = VirtualDevice(flash, radio, heapsize="64K")
        self.vd.provision(device_config(self.device_id, self.key))
        self.address = address_of(self.device_id)

    @property
    def flash(self) -> Path:
        return self.vd.flash

    def start(self) -> Dev:
        self.vd.start()
        return self

    def log_records(self) -> list[bytes]:
        return self.vd.log_records()

    def flash_acked(self) -> int:
        """The acked seq the device has committed to its flash (scanlog's state file)."""
        try:
            return int(json.loads((self.flash / "state.json").read_text()).get("acked", 0))
        except FileNotFoundError:
            return 0


async def wait_advertising(spec: str, addresses: list[str]) -> dict[str, Any]:
    """Scan (gateway.ble.factory.discover) until every address advertises the mcode service."""
    want = {a.upper() for a in addresses}
    seen: dict[str, Any] = {}
    async with asyncio.timeout(WAIT):
        while not want <= set(seen):
            found = await discover(spec, 0.3, service_uuids=[gatt.SERVICE])
            seen.update({a.upper(): v for a, v in found.items() if gatt.SERVICE in v[1].service_uuids})
    return seen


def in_own_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run on a fresh event loop, so the bumble host is a separate central (its own controller)."""
    async def main() -> T:
        async with ble_session():
            return await coro

    return asyncio.run(main())


async def tap(spec: str, address: str) -> Receipt:
    """A phone (its own central, on its own thread and loop) taps the display."""
    return await asyncio.to_thread(in_own_loop, Phone(spec).tap(address, timeout=WAIT))

"""The one place that picks a BLE backend. Callers use only bleak's public API on what it returns.

Specs:
  None, "" or "default"             bleak's platform backend (BlueZ on the Pi)
  "bumble:<bumble transport>"       the bumble backend, e.g. "bumble:tcp-client:127.0.0.1:PORT"
                                    (the virtual radio's HCI port, see sim.radio.hub)

Lifecycle of the bumble backend: the first scanner or client used on an event loop
opens a bumble host (its own virtual controller and random static address) on that
loop; every later one on the loop shares it. Before the loop ends, close them with
``await aclose()``, or run inside ``async with ble_session():``. Nothing is opened at
import or by make_scanner/make_client themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner

BUMBLE_PREFIX = "bumble:"


@dataclass(frozen=True)
class BleBackend:
    """Backend classes (None = bleak's platform default) and the extra kwargs they need."""

    scanner: type[BaseBleakScanner] | None = None
    client: type[BaseBleakClient] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


def ble_backend_from_spec(spec: str | None) -> BleBackend:
    if spec is None or spec in ("", "default"):
        return BleBackend()
    if spec.startswith(BUMBLE_PREFIX) and len(spec) > len(BUMBLE_PREFIX):
        # Imported here so a platform-only gateway does not need bumble installed.
        from gateway.ble.bumble_backend import BumbleClient, BumbleScanner

        return BleBackend(BumbleScanner, BumbleClient, {"bumble_transport": spec[len(BUMBLE_PREFIX):]})
    raise ValueError(f"unknown BLE backend spec {spec!r} (want 'default' or 'bumble:<transport>')")


def make_scanner(spec: str | None, **kw: Any) -> BleakScanner:
    """A BleakScanner on the backend ``spec`` selects; ``kw`` go to BleakScanner."""
    b = ble_backend_from_spec(spec)
    return BleakScanner(backend=b.scanner, **b.kwargs, **kw)


def make_client(spec: str | None, device_or_address: BLEDevice | str, **kw: Any) -> BleakClient:
    """A BleakClient on the backend ``spec`` selects; ``kw`` go to BleakClient (e.g. timeout=)."""
    b = ble_backend_from_spec(spec)
    return BleakClient(device_or_address, backend=b.client, **b.kwargs, **kw)


async def discover(spec: str | None, timeout: float = 5.0,
                   **kw: Any) -> dict[str, tuple[BLEDevice, AdvertisementData]]:
    """Scan for ``timeout`` s: address -> (device, advertisement data).

    Use this rather than ``make_scanner(...).discover(...)``: ``discover`` is a bleak
    classmethod, so called on an instance it builds a new scanner on the platform backend.
    """
    scanner = make_scanner(spec, **kw)
    async with scanner:
        await asyncio.sleep(timeout)
    return dict(scanner.discovered_devices_and_advertisement_data)


async def aclose(spec: str | None = None) -> None:
    """Close the bumble hosts of the running loop (all of them, or the one ``spec`` names)."""
    from gateway.ble.host import aclose_hosts

    if spec is None:
        await aclose_hosts()
        return
    transport = ble_backend_from_spec(spec).kwargs.get("bumble_transport")
    if transport is not None:
        await aclose_hosts(transport)


@asynccontextmanager
async def ble_session(spec: str | None = None) -> AsyncIterator[None]:
    """``async with ble_session():`` closes this loop's bumble hosts on exit."""
    try:
        yield
    finally:
        await aclose(spec)

"""gateway.ble.factory: spec parsing and the bumble backend it selects."""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient, BleakScanner
from conftest import Devices

from gateway.ble import factory
from gateway.ble.bumble_backend import BumbleClient, BumbleScanner
from protocol import gatt


def test_spec_selects_backend() -> None:
    for default in (None, "", "default"):
        b = factory.ble_backend_from_spec(default)
        assert b.scanner is None and b.client is None and b.kwargs == {}
    b = factory.ble_backend_from_spec("bumble:tcp-client:127.0.0.1:9")
    assert (b.scanner, b.client) == (BumbleScanner, BumbleClient)
    assert b.kwargs == {"bumble_transport": "tcp-client:127.0.0.1:9"}
    for bad in ("bumble:", "bluez", "tcp-client:127.0.0.1:9"):
        with pytest.raises(ValueError):
            factory.ble_backend_from_spec(bad)


def test_factory_returns_public_bleak_objects_without_opening_anything() -> None:
    spec = "bumble:tcp-client:127.0.0.1:9"  # nothing listens: building must not connect
    assert isinstance(factory.make_scanner(spec), BleakScanner)
    client = factory.make_client(spec, "C0:11:22:33:44:01", timeout=3)
    assert isinstance(client, BleakClient) and client.address == "C0:11:22:33:44:01"
    assert not client.is_connected and client.mtu_size == 23


@pytest.mark.timeout(60)
def test_discover_helper(spec: str, devices: Devices) -> None:
    devices("C0:11:22:33:44:01", name="mc-0001")

    async def main() -> None:
        async with factory.ble_session():
            found = await factory.discover(spec, 0.3, service_uuids=[gatt.SERVICE])
        dev, adv = found["C0:11:22:33:44:01"]
        assert adv.local_name == "mc-0001" and gatt.SERVICE in adv.service_uuids

    asyncio.run(main())

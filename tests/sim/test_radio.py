"""The virtual radio end to end: real hub, real MicroPython peripherals, bleak through gateway.ble.factory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from conftest import ROOT, Devices

from gateway.ble.factory import ble_session, make_client, make_scanner
from protocol import gatt
from tests.ble import run

OTHER_SERVICE = "0000feed-0000-1000-8000-00805f9b34fb"
A = "C0:11:22:33:44:01"
B = "C0:11:22:33:44:02"
ABSENT = "C0:DE:AD:BE:EF:01"
SMALL = "4d43ff01-2f8b-4c1e-9a57-6d636f646500"  # mp_peripheral's char with the default 20-byte buffer
INFO_VALUE = bytes(range(200))
WAIT = 20.0  # bound on waiting for an event, so a failure fails instead of hanging

pytestmark = pytest.mark.timeout(120)


async def scan_until(spec: str, want: Callable[[dict[str, tuple[BLEDevice, AdvertisementData]]], bool],
                     **kw: Any) -> dict[str, tuple[BLEDevice, AdvertisementData]]:
    scanner = make_scanner(spec, **kw)
    async with scanner:
        async with asyncio.timeout(WAIT):
            while not want(scanner.discovered_devices_and_advertisement_data):
                await asyncio.sleep(0.05)
        return dict(scanner.discovered_devices_and_advertisement_data)


class Echo:
    """Notifications from TAP, collected in a queue."""

    def __init__(self, client: BleakClient) -> None:
        self.client = client
        self.q: asyncio.Queue[bytes] = asyncio.Queue()

    async def start(self) -> Echo:
        await self.client.start_notify(gatt.TAP, lambda _c, d: self.q.put_nowait(bytes(d)))
        return self

    async def ask(self, data: bytes, response: bool = True) -> bytes:
        await self.client.write_gatt_char(gatt.TAP, data, response=response)
        return await asyncio.wait_for(self.q.get(), WAIT)


def test_scan_finds_device_by_service(spec: str, devices: Devices) -> None:
    devices(A, name="mc-a")
    devices(B, service=OTHER_SERVICE, name="other")

    async def main() -> None:
        # Unfiltered first, so B is known to be on the air while the filtered scan runs.
        everything = await scan_until(spec, lambda seen: A in seen and B in seen)
        assert OTHER_SERVICE in everything[B][1].service_uuids
        filtered = await scan_until(spec, lambda seen: A in seen, service_uuids=[gatt.SERVICE])
        assert B not in filtered
        dev, adv = filtered[A]
        assert adv.local_name == "mc-a" and dev.name == "mc-a"
        assert adv.service_uuids == [gatt.SERVICE]

    run(main())


def test_round_trip_read_write_notify(spec: str, devices: Devices) -> None:
    devices(A)

    async def main() -> None:
        async with make_client(spec, A, timeout=10) as client:
            assert client.mtu_size == gatt.WANT_MTU
            assert await client.read_gatt_char(gatt.INFO) == INFO_VALUE
            echo = await Echo(client).start()
            big = bytes(reversed(INFO_VALUE))
            assert await echo.ask(big, response=True) == big
            assert await echo.ask(big[:100], response=False) == big[:100]
            # The device saw the MTU exchange (_IRQ_MTU_EXCHANGED) ...
            assert await echo.ask(b"MTU?") == b"mtu=%d" % gatt.WANT_MTU
            # ... and a random static central address (_IRQ_CENTRAL_CONNECT).
            who = await echo.ask(b"WHO?")
            assert who[0] == 1 and who[1] & 0xC0 == 0xC0 and len(who) == 7
            tap = client.services.get_characteristic(gatt.TAP)
            assert tap is not None and {"write", "write-without-response", "notify"} <= set(tap.properties)
            await client.stop_notify(gatt.TAP)

    run(main())


def test_device_receive_buffer_truncates_like_the_real_module(spec: str, devices: Devices) -> None:
    devices(A)

    async def main() -> None:
        async with make_client(spec, A, timeout=10) as client:
            echo = await Echo(client).start()
            await client.write_gatt_char(SMALL, bytes(range(30)), response=True)
            assert await asyncio.wait_for(echo.q.get(), WAIT) == bytes(range(20))

    run(main())


def test_connect_to_absent_device_fails_instead_of_hanging(spec: str, devices: Devices) -> None:
    devices(A)

    async def main() -> None:
        task = asyncio.create_task(make_client(spec, ABSENT, timeout=1.0).connect())
        done, _ = await asyncio.wait({task}, timeout=WAIT)
        assert task in done, "connect to an absent device hung"
        assert isinstance(task.exception(), TimeoutError)
        # The same host (same controller) can connect afterwards: the pending connect was withdrawn.
        async with make_client(spec, A, timeout=10) as client:
            assert await client.read_gatt_char(gatt.INFO) == INFO_VALUE

    run(main())


def test_caller_cancelling_a_connect_leaves_the_host_usable(spec: str, devices: Devices) -> None:
    devices(A)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(make_client(spec, ABSENT, timeout=30).connect(), 0.5)
        async with make_client(spec, A, timeout=10) as client:
            assert client.is_connected

    run(main())


async def _wait(ev: asyncio.Event) -> None:
    await asyncio.wait_for(ev.wait(), WAIT)


def test_killed_device_disconnects_client_and_restart_reconnects(spec: str, devices: Devices) -> None:
    first = devices(A)

    async def main() -> None:
        gone = asyncio.Event()
        client = make_client(spec, A, timeout=10, disconnected_callback=lambda _c: gone.set())
        await client.connect()
        assert await client.read_gatt_char(gatt.INFO) == INFO_VALUE
        first.kill()
        await _wait(gone)
        assert not client.is_connected
        # The same address in a new process is a new controller on the air, connectable again.
        await asyncio.to_thread(devices, A)
        async with make_client(spec, A, timeout=10) as again:
            assert await again.read_gatt_char(gatt.INFO) == INFO_VALUE

    run(main())


def test_two_devices_at_once(spec: str, devices: Devices) -> None:
    devices(A)
    devices(B)

    async def main() -> None:
        ca, cb = make_client(spec, A, timeout=10), make_client(spec, B, timeout=10)
        await asyncio.gather(ca.connect(), cb.connect())
        try:
            ea, eb = await Echo(ca).start(), await Echo(cb).start()
            ra, rb = await asyncio.gather(ea.ask(b"to-a"), eb.ask(b"to-b"))
            assert (ra, rb) == (b"to-a", b"to-b")
            assert ea.q.empty() and eb.q.empty()
        finally:
            await asyncio.gather(ca.disconnect(), cb.disconnect())

    run(main())


def test_phone_in_another_process_alongside_gateway(spec: str, devices: Devices) -> None:
    devices(A)

    async def main() -> None:
        async with make_client(spec, A, timeout=10) as gw:
            echo = await Echo(gw).start()
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            phone = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "tests" / "sim" / "phone.py"), spec, A, env=env, cwd=ROOT,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out, _ = await asyncio.wait_for(phone.communicate(), 60)
            assert phone.returncode == 0 and b"OK" in out, out.decode()
            # The phone's echo went to the phone only; the gateway link still works.
            assert echo.q.empty()
            assert await echo.ask(b"gateway") == b"gateway"

    run(main())


def test_second_loop_in_another_thread_shares_the_radio(spec: str, devices: Devices) -> None:
    devices(A)

    async def read_info() -> bytes:
        async with ble_session(), make_client(spec, A, timeout=10) as c:
            return bytes(await c.read_gatt_char(gatt.INFO))

    async def main() -> None:
        async with make_client(spec, A, timeout=10) as gw:
            other: Awaitable[bytes] = asyncio.to_thread(asyncio.run, read_info())
            assert await other == INFO_VALUE
            assert await gw.read_gatt_char(gatt.INFO) == INFO_VALUE

    run(main())


def test_hub_runs_standalone_until_sigterm() -> None:
    p = subprocess.Popen([sys.executable, "-m", "sim.radio.hub", "--hci-port", "0", "--dev-port", "0"],
                         cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.startswith("hci_port=") and " dev_port=" in line, line
        ports = dict(kv.split("=") for kv in line.split())
        spec = f"bumble:tcp-client:127.0.0.1:{ports['hci_port']}"

        async def main() -> None:
            async with make_scanner(spec):
                await asyncio.sleep(0.1)

        run(main())
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()

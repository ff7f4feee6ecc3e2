"""Measures the virtual radio (numbers for docs/performance.md); asserts correctness only, never timing.

Run with ``pytest tests/sim/test_radio_perf.py -s`` to see the figures.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from conftest import Devices

from gateway.ble.factory import ble_session, make_client
from protocol import gatt

A = "C0:11:22:33:44:01"
CONNECTS = 10
READS = 200
BURST = 2000  # notifications of 6 records each


def _ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs) * 1e3:.2f} ms, p90 {xs[int(len(xs) * 0.9)] * 1e3:.2f} ms"


@pytest.mark.timeout(180)
def test_measure_radio(spec: str, devices: Devices, capsys: pytest.CaptureFixture[str]) -> None:
    devices(A)
    report: list[str] = []

    async def main() -> None:
        async with ble_session():
            connects = []
            for _ in range(CONNECTS):
                client = make_client(spec, A, timeout=10)
                t0 = time.perf_counter()
                await client.connect()  # link + MTU exchange + service discovery
                connects.append(time.perf_counter() - t0)
                await client.disconnect()
            report.append(f"connect (link + MTU 247 + discovery), {CONNECTS}x: {_ms(connects)}")

            async with make_client(spec, A, timeout=10) as client:
                reads = []
                for _ in range(READS):
                    t0 = time.perf_counter()
                    v = await client.read_gatt_char(gatt.INFO)
                    reads.append(time.perf_counter() - t0)
                    assert len(v) == 200
                report.append(f"read of 200 B, {READS}x: {_ms(reads)}")

                frames: list[int] = []
                end = asyncio.Event()

                def on_note(_c: object, d: bytearray) -> None:
                    if d == b"END":
                        end.set()
                    else:
                        frames.append(len(d))

                await client.start_notify(gatt.TAP, on_note)
                t0 = time.perf_counter()
                await client.write_gatt_char(gatt.TAP, b"BURST %d" % BURST, response=True)
                await asyncio.wait_for(end.wait(), 120)
                dt = time.perf_counter() - t0
                cap = gatt.log_capacity(client.mtu_size)
                assert cap == 6 and frames == [1 + 40 * cap] * BURST
                records = BURST * cap
                report.append(f"notify stream: {records} records of 40 B in {BURST} notifications of "
                              f"{frames[0]} B: {dt:.3f} s = {records / dt:,.0f} records/s, "
                              f"{BURST / dt:,.0f} notifications/s, "
                              f"{records * 40 / dt / 1e3:,.0f} kB/s payload")

    asyncio.run(main())
    with capsys.disabled():
        print("\nvirtual radio:\n  " + "\n  ".join(report))

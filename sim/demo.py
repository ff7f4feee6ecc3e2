"""`mcode demo`: the virtual fleet end to end, shoppers included, optionally self-checking."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from gateway.ble.factory import ble_session
from sim.fleet import Fleet, FleetPlan
from sim.phone import Phone
from sim.shoppers import Crowd, CrowdStats
from sim.tally import Tally, tally

log = logging.getLogger(__name__)


async def _wait_for_codes(fleet: Fleet, timeout: float) -> None:
    """Devices show a code only once the gateway has set their clocks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(d.shown_code() for d in fleet.devices):
            return
        dead = fleet.check_alive()
        if dead:
            raise RuntimeError(f"stopped early: {', '.join(dead)} (logs in {fleet.workdir})")
        await asyncio.sleep(0.25)
    raise RuntimeError(f"displays not synced after {timeout:.0f}s (logs in {fleet.workdir})")


async def _drain(fleet: Fleet, receipts: list[tuple[str, bytes]], timeout: float) -> tuple[Tally, bool]:
    deadline = time.monotonic() + timeout
    while True:
        t = tally(fleet.devices, fleet.db_url, receipts)
        if t.lost == 0 and t.receipts_in_cloud == t.receipts:
            return t, True
        if time.monotonic() > deadline:
            return t, False
        fleet.check_alive()  # a device that reset is started again; the tally shows the rest
        await asyncio.sleep(0.5)


async def _run(fleet: Fleet, duration: float | None, check: bool, drain_s: float, seed: int) -> int:
    console = Console(stderr=True)
    await _wait_for_codes(fleet, 60)
    console.print(f"[bold]merchant page[/] {fleet.login_url} · 商户页登录; the key to type is in "
                  f"{fleet.merchant_key_file} (mode 0600) · 登录密钥在此文件中")
    console.print("cloud on plain HTTP (MCODE_CLOUD_INSECURE_HTTP=1: cookies without Secure), for this "
                  "local demo only · 本地演示使用明文 HTTP，Cookie 不带 Secure")
    console.print(f"displays: {', '.join(f'{d.device_id} shows {d.shown_code()}' for d in fleet.devices)}")
    async with ble_session():
        crowd = Crowd(fleet.api, fleet.merchant["api_key"], fleet.devices, Phone(fleet.ble_spec),
                      random.Random(seed))
        stop = asyncio.Event()
        task = asyncio.create_task(crowd.run(stop))
        started = time.monotonic()
        try:
            while duration is None or time.monotonic() - started < duration:
                await asyncio.sleep(1)
                dead = fleet.check_alive()
                if dead:
                    raise RuntimeError(f"stopped: {', '.join(dead)} (logs in {fleet.workdir})")
        finally:
            stop.set()
            stats: CrowdStats = await task
    if not check:
        return 0
    receipts = [(dev, r.raw) for dev, r in stats.receipts]
    t, drained = await _drain(fleet, receipts, drain_s)
    out = asdict(t) | {"drained": drained, "ok": t.ok and drained, "taps_with_receipt": stats.taps,
                       "tap_failures": stats.tap_failures, "entries": stats.entries, "shares": stats.shares,
                       "order_replays_matched": stats.order_replays_matched,
                       "device_restarts": sum(fleet.device_restarts.values()),
                       "resolve_errors": stats.resolve_errors}
    if not drained:
        console.print(f"[red]pipeline did not drain within {drain_s:.0f}s[/]")
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0 if out["ok"] else 1


def run_demo(devices: int, duration: float | None, check: bool, workdir: Path | None,
             drain_s: float = 60.0, seed: int = 1) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The virtual controller logs a phone's own disconnect races as errors; they are not faults.
    logging.getLogger("bumble").setLevel(logging.CRITICAL)
    wd = workdir or Path(tempfile.mkdtemp(prefix="mcode-demo-"))
    fleet = Fleet(wd, FleetPlan(devices=devices))
    Console(stderr=True).print(f"starting {devices} devices, gateway, cloud, broker, radio in {wd}")
    try:
        fleet.start()
        return asyncio.run(_run(fleet, duration, check, drain_s, seed))
    except KeyboardInterrupt:
        return 0
    finally:
        fleet.stop()

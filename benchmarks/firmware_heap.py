"""Peak GC heap of the real firmware while it serves BLE: phones tap it and the gateway pulls
its log over the virtual radio, under `micropython -X heapsize=128K`.

Run: python -m benchmarks.firmware_heap [--taps 60]
Reports the heap used by the firmware as a ratio of the heap limit, with the bare
interpreter (measured in the same run, before the firmware is imported) as the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bleak.exc import BleakError

from gateway.ble.factory import ble_session
from gateway.collector import Collector
from gateway.config import BleConfig, Device, GatewayConfig
from gateway.spool import Spool
from protocol import devconfig, keys
from protocol.hmac256 import HmacKey
from sim import mprun
from sim.devices import ROOT, micropython_exe
from sim.phone import Phone
from sim.radio.hub import RadioHub
from tools.build import ROMFS, host_build

HEAP = 128 * 1024
LARGEST_BOARD = "label-esp32c3-ssd1680"  # the biggest frame buffer: 296x128


def _gateway_sweep(cfg: GatewayConfig, spool: Spool) -> None:
    """One gateway pull, on its own loop and so its own radio host: the gateway is another machine."""

    async def sweep() -> None:
        async with ble_session():
            await Collector(cfg, spool).sweep()

    asyncio.run(sweep())


async def _drive(spec: str, name: str, cfg: GatewayConfig, spool: Spool, taps: int,
                 retries: list[str]) -> int:
    phone = Phone(spec)
    async with ble_session():
        for _ in range(100):
            found = await phone.find_displays(0.5)
            if name in found:
                break
        address = found[name]
        await asyncio.to_thread(_gateway_sweep, cfg, spool)  # sets the clock, pulls the boot record
        done = 0
        for i in range(taps):
            for _attempt in range(3):  # a shopper taps again when nothing happens
                try:
                    await phone.tap(address, timeout=5.0)
                    break
                except (BleakError, TimeoutError) as e:
                    retries.append(f"tap {i}: {e}")
                    await asyncio.sleep(0.5)
            else:
                raise RuntimeError(f"tap {i} failed 3 times: {retries[-3:]}")
            done += 1
            if i % 20 == 19:
                await asyncio.to_thread(_gateway_sweep, cfg, spool)
        await asyncio.to_thread(_gateway_sweep, cfg, spool)
    return done


def _sealed_with_art(board: str, dev_key: bytes, dev_id: bytes) -> bytes:
    from cloud.services import label_art

    disp = json.loads((ROOT / "hardware" / "boards" / f"{board}.json").read_text())["display"]
    art = label_art.device_art("扫码有礼", "https://m.mcode.cn/s/4919", disp["width"], disp["height"])
    s = devconfig.Settings(1, "4919", 0, 4, 2, 60, "扫码有礼", 0, "m.mcode.cn", art)
    return devconfig.seal(HmacKey(keys.config_key(dev_key)), dev_id, s)


def measure(taps: int, seconds: float, heap: int = HEAP, board: str = LARGEST_BOARD,
            art: bool = True) -> dict[str, int | float | str | list[str] | None]:
    work = Path(tempfile.mkdtemp(prefix="mcode-heap-"))
    dev_key, dev_id, gw_id = os.urandom(32), os.urandom(8), os.urandom(8)
    flash = work / "flash"
    flash.mkdir()
    shutil.copyfile(ROOT / "hardware" / "boards" / f"{board}.json", flash / "board.json")
    (flash / "config.json").write_text(json.dumps({
        "device_id": dev_id.hex(), "key": dev_key.hex(), "base": "4919", "slot": 0, "slots": 4,
        "digits": 2, "period": 60, "label": "Heap probe", "name": "mc-" + dev_id.hex()[-4:], "fw": 1}))
    if art:  # the cloud's sealed config with the label and QR art, as provisioning writes it
        (flash / "devconfig.bin").write_bytes(_sealed_with_art(board, dev_key, dev_id))
    retries: list[str] = []
    with RadioHub() as hub:
        # The firmware from its ROMFS image (sim/mprun.py), as the virtual devices run it.
        micropython_exe()
        env = dict(os.environ, MICROPYPATH=f"{ROOT / 'benchmarks'}:.frozen", MCODE_RADIO=hub.dev_addr)
        proc = subprocess.Popen(mprun.command(host_build() / ROMFS, f"{heap // 1024}K", "mp_heap_probe",
                                              str(seconds)),
                                cwd=flash, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        spec = "bumble:" + hub.hci_spec
        cfg = GatewayConfig(gateway_id=gw_id, private_key_path=work / "unused.key",
                            spool_path=work / "spool.sqlite",
                            ble=BleConfig(backend=spec, scan_s=0.5, connect_timeout_s=5.0),
                            devices=(Device(dev_id, keys.gateway_key(dev_key, gw_id)),))
        spool = Spool(cfg.spool_path)
        try:
            done = asyncio.run(_drive(spec, "mc-" + dev_id.hex()[-4:], cfg, spool, taps, retries))
        except Exception as e:
            proc.kill()
            raise RuntimeError(f"{e!r}; the device said:\n{proc.communicate()[0][-3000:]}") from e
        out, _ = proc.communicate(timeout=seconds + 30)
    line = next((ln for ln in out.splitlines() if ln.startswith("HEAP ")), None)
    if line is None:
        raise RuntimeError(out[-2000:])
    f = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    # qstr_info: "qstr pool: n_pool=5, n_qstr=578, ..." (the next pool costs ~7 KB at once)
    q = next((ln for ln in out.splitlines() if ln.startswith("qstr pool:")), "")
    qf = {k.strip(): int(v) for k, v in (kv.split("=") for kv in q.split(":", 1)[1].split(","))} if q else {}
    # What the device said went wrong (e.g. "control failed: out of memory", a display
    # task short of heap, the watchdog giving up), counted.
    errors = [ln for ln in out.splitlines()
              if "failed" in ln or "Error" in ln or "out of memory" in ln or ln.startswith("watchdog:")]
    return {"board": board, "art": art, "device_errors": len(errors), "first_device_errors": errors[:3],
            # A battery board sleeps between events (firmware/sleep.py) if it had the heap to load it.
            "sleep_no_heap": "sleep: no heap" in out,
            "taps": done, "tap_retries": len(retries), "first_retry": retries[:1],
            "records_spooled": spool.counts().records, "device_head_seq": f["head"],
            "heap_limit": heap, "interpreter_base": f["base"], "live_peak": f["live_peak"],
            "live_end": f["live_end"], "alloc_peak_between_collects": f["peak"],
            "qstrs": qf.get("n_qstr"), "qstr_pools": qf.get("n_pool"),
            "live_peak_ratio_of_limit": round(f["live_peak"] / heap, 3),
            "live_peak_ratio_of_interpreter_base": round(f["live_peak"] / f["base"], 1),
            # The host's Python bluetooth module (imported, before any firmware): on the ESP32
            # that module is C, so this much of the peak is the host's, not the device's.
            "host_bluetooth_import": f["shim"],
            "live_peak_less_host_bluetooth_ratio_of_limit": round((f["live_peak"] - f["shim"]) / heap, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--taps", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--heap-k", type=int, default=HEAP // 1024)
    ap.add_argument("--board", default=LARGEST_BOARD, help="a profile in hardware/boards/")
    ap.add_argument("--no-art", action="store_true", help="config.json alone: no sealed config with art")
    a = ap.parse_args()
    print(json.dumps(measure(a.taps, a.seconds, a.heap_k * 1024, a.board, not a.no_art)))


if __name__ == "__main__":
    main()

"""Duty cycle of the real firmware in the simulator, and the power budget it implies per board.

Run: python -m benchmarks.firmware_power [--board B] [--seconds 120] [--heap-k 128]
The firmware (its ROMFS image, in the MicroPython unix port, on the virtual radio) runs with the
board's profile and a sealed config with art; a phone taps it every --tap-every seconds and a
gateway pulls its log every --pull-every seconds. firmware/sleep.py counts the time the loop was
idle with no central connected (where the chip would lightsleep), idle with one connected, and the
rest, when the CPU ran; the display counts its redraws.

The budget is a MODEL: those duty cycles times the currents in CURRENTS (datasheet figures, rounded,
not measured here: there is no board on this machine), plus a charge per advertising event and per
e-paper refresh. It prints JSON with the measured fractions and the modelled average current.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bleak.exc import BleakError

from benchmarks.firmware_heap import LARGEST_BOARD, _gateway_sweep, _sealed_with_art
from gateway.ble.factory import ble_session
from gateway.config import BleConfig, Device, GatewayConfig
from gateway.spool import Spool
from protocol import gatt, keys
from sim import mprun
from sim.devices import ROOT, micropython_exe
from sim.phone import Phone
from sim.radio.hub import RadioHub
from tools.build import ROMFS, host_build

# Model inputs (mA unless said; mC = millicoulomb per event). ESP32-C3 datasheet: active at
# 160 MHz with the radio off about 20-25 mA, light sleep about 0.13 mA; BLE TX at 0 dBm about
# 100 mA for about 0.4 ms per channel, 3 channels an advertising event. SSD1680 2.9" panel:
# about 4 mA while refreshing, a partial refresh about 0.4 s, a full one about 3 s.
# ESP32-WROOM-32 with a 0.96" SSD1306: about 30 mA running or idle awake (no sleep on mains),
# the OLED about 10 mA with a third of its pixels lit.
CURRENTS = {
    "label": {"run": 22.0, "idle_connected": 15.0, "asleep": 0.13, "adv_event_mC": 0.12,
              "partial_mC": 1.6, "full_mC": 12.0, "full_every": 20, "battery_mAh": 1200.0},
    "kiosk": {"run": 30.0, "idle_connected": 30.0, "asleep": 30.0, "adv_event_mC": 0.12,
              "display": 10.0},
}


async def _drive(spec: str, name: str, cfg: GatewayConfig, spool: Spool, seconds: float,
                 tap_every: float, pull_every: float) -> tuple[int, int]:
    phone = Phone(spec)
    taps = pulls = 0
    async with ble_session():
        found: dict[str, str] = {}
        for _ in range(100):
            found = await phone.find_displays(0.5)
            if name in found:
                break
        address = found[name]
        await asyncio.to_thread(_gateway_sweep, cfg, spool)  # sets the clock
        pulls += 1
        start = time.monotonic()
        next_tap, next_pull = start + tap_every, start + pull_every
        while time.monotonic() - start < seconds - 10:
            now = time.monotonic()
            if now >= next_tap:
                try:
                    await phone.tap(address, timeout=5.0)
                    taps += 1
                except (BleakError, TimeoutError):
                    pass
                next_tap += tap_every
            if now >= next_pull:
                await asyncio.to_thread(_gateway_sweep, cfg, spool)
                pulls += 1
                next_pull += pull_every
            await asyncio.sleep(0.2)
    return taps, pulls


def model(kind: str, f: dict[str, float]) -> dict[str, float]:
    """Average current (mA) from the measured fractions and rates."""
    c = CURRENTS[kind]
    adv_per_s = 1e6 / gatt.ADV_INTERVAL_US
    parts = {"cpu_running": f["run"] * c["run"], "idle_connected": f["idle_connected"] * c["idle_connected"],
             "asleep": f["asleep"] * c["asleep"], "advertising": adv_per_s * c["adv_event_mC"]}
    if "partial_mC" in c:
        per_s = f["redraws_per_h"] / 3600
        full_share = 1 / c["full_every"]
        parts["epaper"] = per_s * ((1 - full_share) * c["partial_mC"] + full_share * c["full_mC"])
    else:
        parts["display"] = c["display"]
    total = sum(parts.values())
    out = {k: round(v, 3) for k, v in parts.items()} | {"total_mA": round(total, 3)}
    if "battery_mAh" in c:
        out["battery_days"] = round(c["battery_mAh"] / total / 24, 1)
        without_adv = total - parts["advertising"] + (1e6 / 1_000_000) * c["adv_event_mC"]
        out["battery_days_at_1s_advertising"] = round(c["battery_mAh"] / without_adv / 24, 1)
    return out


def measure(board: str, seconds: float, heap_k: int, tap_every: float, pull_every: float) -> dict:
    prof = json.loads((ROOT / "hardware" / "boards" / f"{board}.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="mcode-power-"))
    dev_key, dev_id, gw_id = os.urandom(32), os.urandom(8), os.urandom(8)
    flash = work / "flash"
    flash.mkdir()
    shutil.copyfile(ROOT / "hardware" / "boards" / f"{board}.json", flash / "board.json")
    (flash / "config.json").write_text(json.dumps({
        "device_id": dev_id.hex(), "key": dev_key.hex(), "base": "4919", "slot": 0, "slots": 4,
        "digits": 2, "period": 60, "label": "Power probe", "name": "mc-" + dev_id.hex()[-4:], "fw": 1}))
    (flash / "devconfig.bin").write_bytes(_sealed_with_art(board, dev_key, dev_id))
    with RadioHub() as hub:
        micropython_exe()
        env = dict(os.environ, MICROPYPATH=f"{ROOT / 'benchmarks'}:.frozen", MCODE_RADIO=hub.dev_addr)
        proc = subprocess.Popen(mprun.command(host_build() / ROMFS, f"{heap_k}K", "mp_power_probe",
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
            taps, pulls = asyncio.run(_drive(spec, "mc-" + dev_id.hex()[-4:], cfg, spool, seconds,
                                             tap_every, pull_every))
        except Exception as e:
            proc.kill()
            raise RuntimeError(f"{e!r}; the device said:\n{proc.communicate()[0][-3000:]}") from e
        out, _ = proc.communicate(timeout=seconds + 30)
    line = next((ln for ln in out.splitlines() if ln.startswith("POWER ")), None)
    if line is None:
        raise RuntimeError(out[-2000:])
    v = {k: int(x) for k, x in (kv.split("=") for kv in line.split()[1:])}
    total = v["total"]
    fr = {"asleep": v["asleep"] / total, "idle_connected": v["idle_connected"] / total}
    fr["run"] = 1 - fr["asleep"] - fr["idle_connected"]
    fr["redraws_per_h"] = v["redraws"] * 3600 / (total / 1000)
    kind = prof.get("class", "label")
    return {"board": board, "heap_k": heap_k, "seconds": round(total / 1000, 1), "taps": taps,
            "pulls": pulls, "naps": v["naps"], "sleeping": v["naps"] > 0,
            "fraction_asleep": round(fr["asleep"], 4),
            "fraction_idle_connected": round(fr["idle_connected"], 4),
            "fraction_running": round(fr["run"], 4), "redraws": v["redraws"],
            "redraws_per_h": round(fr["redraws_per_h"]), "model_mA": model(kind, fr)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--board", default=LARGEST_BOARD, help="a profile in hardware/boards/")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--heap-k", type=int, default=128)
    ap.add_argument("--tap-every", type=float, default=20.0, help="seconds between phone taps")
    ap.add_argument("--pull-every", type=float, default=40.0, help="seconds between gateway pulls")
    a = ap.parse_args()
    print(json.dumps(measure(a.board, a.seconds, a.heap_k, a.tap_every, a.pull_every)))


if __name__ == "__main__":
    main()

"""Soak the firmware's device logic under a 64 KiB heap, as .mpy like on the device.

Run: python -m benchmarks.firmware_soak [--taps 10000 --rotations 1000 --heap 64K]
Runs benchmarks/mp_soak.py in the MicroPython unix port with the firmware in its ROMFS image
(tools.build.host_build, sim/mprun.py) and the largest board profile, prints JSON:
bytes allocated per tap and per rotation, live heap after warm-up and at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sim import mprun
from sim.devices import ROOT, micropython_exe
from tools import boards
from tools.build import ROMFS, host_build

LARGEST = "label-esp32c3-ssd1680"  # 296x128: the biggest framebuffer of any profile


def soak(taps: int, rotations: int, heap: str, board: str = LARGEST) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="mcode-soak-"))
    flash = work / "flash"
    flash.mkdir()
    shutil.copyfile(boards.profile_path(board), flash / "board.json")
    micropython_exe()
    # The firmware's .mpy from its ROMFS image, run in place (sim/mprun.py) as the devices run it.
    p = subprocess.run(mprun.command(host_build() / ROMFS, heap, "mp_soak", str(taps), str(rotations)),
                       cwd=flash, capture_output=True, text=True,
                       env=dict(os.environ, MICROPYPATH=f"{ROOT / 'benchmarks'}:.frozen"), timeout=600)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("SOAK ")), None)
    if line is None:
        raise RuntimeError(p.stdout[-2000:] + p.stderr[-2000:])
    out: dict[str, object] = json.loads(line[5:])
    out["heap"] = heap
    out["board"] = board
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--taps", type=int, default=10000)
    ap.add_argument("--rotations", type=int, default=1000)
    ap.add_argument("--heap", default="64K")
    a = ap.parse_args()
    print(json.dumps(soak(a.taps, a.rotations, a.heap)))


if __name__ == "__main__":
    main()

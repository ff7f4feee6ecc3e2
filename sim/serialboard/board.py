"""The virtual serial board: a pseudo-terminal whose far end behaves like an ESP32 running
MicroPython, so the real mpremote, pyserial and `mcode tools` talk to it unchanged.

    outer pty  (its slave, /dev/pts/N, is the board's serial port)
      ^  relay (this module, a thread)
      v
    inner pty  (stdio and controlling terminal of one boot: child.py, the unix port)

A boot is one child process. The relay watches how it ends and does what a board does:
  exit 0            a soft reset (Ctrl-D at the REPL, or in raw REPL with no code): prints
                    "MPY: soft reboot" and boots again, into raw REPL if it was there (main.py
                    then does not run, as on the ESP32 port);
  SIGUSR1, exit 75  machine.reset(), or the firmware restarting itself: the ROM banner
                    (rst: software) and a boot into main.py;
  SIGUSR2           the firmware's crash handler resetting the chip: rst: panic;
  SIGALRM           the firmware's watchdog (firmware/hw.py): rst: watchdog;
  anything else     a crash of the chip: rst: panic.
Output that nobody reads is dropped (the outer master is non-blocking), as a UART drops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path
from typing import BinaryIO

from sim.serialboard import rom
from tools import boards
from tools.build import host_build

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_PROMPT = b"\r\n>>> "
FLASH_BLOCKS = 512  # 2 MiB of 4 KiB blocks: the vfs partition of a 4 MiB module
EXIT_RESTART = 75  # firmware/main.py's deliberate restart on the host


def _set_ctty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # Ctrl-C while the boot is starting is lost, as on a booting board, rather than killing it
    # (CPython keeps an ignored SIGINT ignored; the unix port handles it while it runs code).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class SerialBoard:
    def __init__(self, state: Path, board: str, radio: str | None = None,
                 heapsize: str | None = None) -> None:
        self.state = state
        path = boards.profile_path(board)
        self.profile = json.loads(path.read_text())
        self.chip = str(self.profile.get("mcu", "ESP32-WROOM-32"))
        self.heapsize = heapsize or f"{boards.validate(path).heap_kib}K"  # the profile's heap
        self.radio = radio
        self.port = ""
        self.boots = 0
        self.cause = rom.POWER_ON  # the last hard reset's
        self.raw = False  # the REPL's mode as last seen in the output
        self._proc: subprocess.Popen[bytes] | None = None
        self._inner = -1
        self._swallow: bytes | None = None  # a raw-mode reboot's output until its raw prompt
        self._tail = b""
        self._pending = b""  # from the host while no boot runs
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log: BinaryIO | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> str:
        self.state.mkdir(parents=True, exist_ok=True)
        self._port_modules = str(host_build() / "rom" / "host")
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self._hold = slave  # kept open: a client closing the port must not hang it up
        os.set_blocking(self._master, False)
        self.port = os.ttyname(slave)
        (self.state / "port").write_text(self.port + "\n")
        self._log = open(self.state / "console.log", "ab")  # noqa: SIM115 - lives as long as the board
        self._write(rom.banner(self.chip, rom.POWER_ON))
        self._boot(rom.POWER_ON, raw=False)
        self._thread = threading.Thread(target=self._relay, name="serialboard", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._kill()
        for fd in (self._master, self._hold):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._log is not None:
            self._log.close()

    def peek(self, name: str) -> bytes | None:
        """A file on the board's flash, read from a copy of the image by the unix port (littlefs is
        copy-on-write, so a copy is a consistent snapshot); the board notices nothing, as a
        person reading its display does not. None if there is no such file."""
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            img = Path(tmp) / "flash.bin"
            shutil.copyfile(self.state / "flash.bin", img)
            exe = Path(sys.executable).with_name("micropython")
            out = subprocess.run([str(exe), str(Path(__file__).parent / "mp" / "readfile.py"), str(img),
                                  str(FLASH_BLOCKS), name], capture_output=True, text=True, timeout=30)
        text = out.stdout.strip()
        return None if out.returncode or text in ("", "-") else bytes.fromhex(text)

    def mac(self) -> str:
        """The board's BLE address, drawn once and kept with its flash (an eFuse MAC)."""
        p = self.state / "mac"
        if not p.exists():
            p.write_text(os.urandom(6).hex(":") + "\n")
        return p.read_text().strip()

    # -- one boot ------------------------------------------------------------
    def _boot(self, cause: str, raw: bool) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] |= termios.ISIG  # Ctrl-C while a program runs is SIGINT, as the port wants
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        env = dict(os.environ, MCODE_RESET_CAUSE=str(rom.MACHINE_CAUSE[cause]),
                   MCODE_RAW="1" if raw else "0", MCODE_FLASH_BLOCKS=str(FLASH_BLOCKS),
                   MCODE_RADIO_ADDR=self.mac(), MCODE_CHIP=self.chip,
                   MCODE_PORT_MODULES=self._port_modules)
        env.pop("MICROPYPATH", None)
        if self.radio:
            env["MCODE_RADIO"] = self.radio
        root = Path(__file__).resolve().parents[2]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "sim.serialboard.child", str(self.state), self.heapsize],
            stdin=slave, stdout=slave, stderr=slave, cwd=root, env=env,
            start_new_session=True, preexec_fn=_set_ctty)
        os.close(slave)
        self._inner = master
        self.boots += 1
        self._note(f"boot {self.boots} pid {self._proc.pid} {cause}{' raw' if raw else ''}")
        self.cause = cause
        self._swallow = b"" if raw else None
        if raw:
            os.write(master, b"\x01")  # back into raw REPL once its REPL reads
        if self._pending:
            os.write(master, self._pending)
            self._pending = b""

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._inner >= 0:
            with contextlib.suppress(OSError):
                os.close(self._inner)
            self._inner = -1

    def _ended(self) -> None:
        """The boot's process is gone: drain it, then reset the way its end says."""
        assert self._proc is not None
        self._drain()
        rc = self._proc.returncode
        self._note(f"boot {self.boots} ended rc {rc}")
        os.close(self._inner)
        self._inner = -1
        if rc == 0:
            self._write(rom.SOFT_REBOOT)
            self._boot(self.cause, raw=self.raw)  # the chip's reset cause stays the last hard one
            return
        cause = {-signal.SIGUSR1: rom.SOFTWARE, EXIT_RESTART: rom.SOFTWARE,
                 -signal.SIGALRM: rom.WATCHDOG, -signal.SIGUSR2: rom.PANIC}.get(rc, rom.PANIC)
        self.raw = False
        self._write(rom.banner(self.chip, cause))
        self._boot(cause, raw=False)

    # -- relay ---------------------------------------------------------------
    def _relay(self) -> None:
        while not self._stop.is_set():
            fds = [self._master] + ([self._inner] if self._inner >= 0 else [])
            ready, _, _ = select.select(fds, [], [], 0.05)
            if self._master in ready:
                data = b""
                with contextlib.suppress(BlockingIOError):
                    data = os.read(self._master, 4096)
                if data:
                    if self._inner >= 0 and self._proc is not None and self._proc.poll() is None:
                        with contextlib.suppress(OSError):
                            os.write(self._inner, data)
                    else:
                        self._pending += data
            if self._inner >= 0 and self._inner in ready:
                self._drain()
            if self._proc is not None and self._proc.poll() is not None and self._inner >= 0:
                self._ended()

    def _drain(self) -> None:
        while True:
            try:
                r, _, _ = select.select([self._inner], [], [], 0)
                if not r:
                    return
                data = os.read(self._inner, 4096)
            except OSError:  # EIO: the boot's side is closed
                return
            if not data:
                return
            self._from_board(data)

    def _from_board(self, data: bytes) -> None:
        if self._swallow is not None:  # a raw-mode reboot: the unix port's banner is not the board's
            self._swallow += data
            i = self._swallow.find(RAW_PROMPT)
            if i < 0:
                return
            data, self._swallow = self._swallow[i:], None
        seen = self._tail[-32:] + data
        raw_at, friendly_at = seen.rfind(RAW_PROMPT), seen.rfind(FRIENDLY_PROMPT)
        if raw_at >= 0 or friendly_at >= 0:
            self.raw = raw_at > friendly_at
        self._tail = seen[-32:]
        self._write(data)

    def _note(self, what: str) -> None:
        """STATE/boots.log: each boot's start and how its process ended (the banner alone cannot tell
        a machine.reset() from a crash on the ESP32-C3, both rst:0xc), for whoever debugs a reset."""
        with open(self.state / "boots.log", "a") as f:
            f.write(f"{time.time():.3f} {what}\n")

    def _write(self, data: bytes) -> None:
        if self._log is not None:
            self._log.write(data)
            self._log.flush()
        with contextlib.suppress(BlockingIOError, OSError):  # nobody reading: dropped
            os.write(self._master, data)

"""A MicroPython board on a serial port, through mpremote's own transport (the code the
`mpremote` command runs): raw REPL, files, sha256, reset. Port trouble becomes a ToolError
that says what to do."""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from tools.errors import PORT, ToolError
from tools.i18n import _

# Whatever the board, in one round trip. The unix port (the virtual board) has os.getenv; the
# ESP32 port has not. unique_id: the chip's MAC, which names the board in batch state files.
PROBE = """\
import os, sys, gc, machine
g = getattr(os, 'getenv', lambda k: None)
try:
    m = os.uname().machine
except Exception:
    m = ''
try:
    b = open('board.json').read()
except OSError:
    b = ''
try:
    u = machine.unique_id().hex()
except Exception:
    u = ''
gc.collect()
print(repr((sys.platform, m, g('MCODE_CHIP'), g('MCODE_STATE'), b, u, gc.mem_free(),
            gc.mem_free() + gc.mem_alloc(), os.statvfs('/'), machine.reset_cause())))
"""
NOTE_RESTART = """\
try:
    import bootstate
    from protocol import record
    bootstate.note('', record.RESET_SOFT)
except Exception:
    pass
"""
CHIP_NAMES = (("ESP32C3", "ESP32-C3"), ("ESP32S3", "ESP32-S3"), ("ESP32", "ESP32-WROOM-32"))


@dataclass(frozen=True)
class BoardInfo:
    platform: str
    chip: str  # as hardware/boards profiles name it
    state: str | None  # the virtual board's state folder; None on hardware
    board_json: str
    unique_id: str
    heap_free: int
    heap_total: int
    flash_free: int
    flash_total: int
    reset_cause: int

    @property
    def virtual(self) -> bool:
        return self.state is not None


def port_problem(port: str) -> ToolError:
    """Why a port cannot be opened, in words that say what to do."""
    p = Path(port)
    if not p.exists():
        return ToolError(_("No serial port {port}. Plug the board in with a data USB cable "
                           "(some cables only charge), then try again.").format(port=port), PORT)
    if not os.access(p, os.R_OK | os.W_OK):
        return ToolError(_("No permission to open {port}. Add yourself to the dialout group "
                           "(sudo usermod -aG dialout $USER) and log in again.").format(port=port), PORT)
    return ToolError(_("Port {port} is busy: another program has it open (mpremote, screen, a serial "
                       "monitor, mcode tools monitor). Close it and try again.").format(port=port), PORT)


READ_TIMEOUT_S = 5.0  # longer than any pause of a board that still answers


class Link:
    def __init__(self, port: str) -> None:
        self.port = port
        if not Path(port).exists():
            raise port_problem(port)
        try:
            self.t = SerialTransport(port, exclusive=True)
        except TransportError:
            raise port_problem(port) from None
        # On a pty mpremote reads without polling first, and its serial timeout is None: a board
        # that went silent mid-command (reset, crash loop) would block that read for ever. With a
        # finite one, mpremote's own per-character timeouts apply and the link fails with an error.
        self.t.serial.timeout = READ_TIMEOUT_S
        try:
            self.t.enter_raw_repl(soft_reset=True)
        except TransportError:
            self.t.close()
            raise ToolError(_("The device on {port} does not answer like MicroPython. Press its RESET "
                              "button; if it was never flashed, run: mcode tools flash {port} --board "
                              "BOARD --image MICROPYTHON.bin").format(port=port), PORT) from None

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.t.exit_raw_repl()
        except Exception:  # noqa: BLE001 - the board may be resetting or gone
            pass
        try:
            self.t.close()
        except Exception:  # noqa: BLE001
            pass

    def exec(self, code: str) -> str:
        try:
            return self.t.exec(code).decode(errors="replace")
        except TransportExecError as e:
            raise ToolError(_("The device failed: {error}").format(
                error=e.error_output.strip().splitlines()[-1]), 1) from None
        except (TransportError, OSError) as e:  # pyserial's SerialException is an OSError
            raise ToolError(_("Lost the device on {port}: {error}. Check the cable.").format(
                port=self.port, error=e), PORT) from None

    def probe(self) -> BoardInfo:
        t = ast.literal_eval(self.exec(PROBE).strip())
        plat, machine, env_chip, state, board_json, uid, free, total, vfs, cause = t
        chip = env_chip or next((name for key, name in CHIP_NAMES if key in machine.upper()), machine)
        return BoardInfo(plat, chip, state, board_json, uid, free, total,
                         vfs[0] * vfs[3], vfs[0] * vfs[2], cause)

    def write(self, path: str, data: bytes, progress: Any = None) -> None:
        try:
            self.t.fs_writefile(path, data, progress_callback=progress)
        except (TransportError, OSError) as e:
            raise ToolError(_("Lost the device on {port}: {error}. Check the cable.").format(
                port=self.port, error=e), PORT) from None

    def sha256(self, path: str) -> str | None:
        try:
            return bytes(self.t.fs_hashfile(path, "sha256")).hex()
        except (TransportError, OSError):
            return None

    def read(self, path: str) -> bytes | None:
        try:
            return bytes(self.t.fs_readfile(path))
        except (TransportError, OSError):
            return None

    def remove(self, path: str) -> None:
        try:
            self.t.fs_rmfile(path)
        except (TransportError, OSError):
            pass

    def listdir(self, path: str = "") -> list[str]:
        try:
            return [e.name for e in self.t.fs_listdir(path)]
        except (TransportError, OSError):
            return []

    def reset(self) -> None:
        """A hard reset (machine.reset()): the firmware boots again. Closes the link."""
        self.reset_open()
        try:
            self.t.close()
        except Exception:  # noqa: BLE001
            pass

    def reset_open(self) -> serial.Serial:
        """A hard reset, the port left open to read the boot log (bootlog.follow); close it after."""
        try:
            # The firmware was stopped by this session's Ctrl-C: a deliberate restart, which its boot
            # bookkeeping (firmware/bootstate.py) must not count toward safe mode.
            self.t.exec(NOTE_RESTART)
        except (TransportError, OSError):
            pass
        try:
            self.t.exec_raw_no_follow("import machine; machine.reset()")
        except (TransportError, OSError):
            pass
        self.t.in_raw_repl = False
        self.t.serial.timeout = 0.2  # mpremote's is None: a read would wait for ever
        return self.t.serial

"""A board's serial log, line by line, with reset causes decoded: what `monitor` prints and what
`provision` watches after a reset. The ROM bootloader's `rst:` line names the cause (the table
is in sim/serialboard/rom.py, which the virtual board prints from); the firmware's own words for
trouble are in TROUBLE."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import serial

from sim.serialboard import rom
from tools.i18n import _
from tools.link import port_problem

# Lines the firmware prints when a boot goes wrong (firmware/main.py).
TROUBLE = ("Traceback", "safe mode", "watchdog:", "control failed", "bad config", "MemoryError")
# A boot report: "device <16 hex> ... code <base-suffix or ->" (if the firmware prints one).
REPORT = re.compile(r"device ([0-9a-f]{16}).*?code (\d+-\d+|-+|none)")


def cause_words() -> dict[str, str]:
    return {rom.POWER_ON: _("power on"), rom.SOFTWARE: _("software reset (machine.reset or a restart)"),
            rom.WATCHDOG: _("watchdog: the firmware stopped feeding it"), rom.PANIC: _("crash (panic)"),
            "unknown": _("unknown cause")}


@dataclass(frozen=True)
class Line:
    text: str
    reset: str | None  # a decoded cause, for a ROM rst: line
    trouble: bool


def classify(text: str) -> Line:
    cause = rom.decode(text)
    return Line(text, cause, any(t in text for t in TROUBLE))


def lines(port: str, seconds: float | None,
          stop: Callable[[Line], bool] = lambda _l: False) -> Iterator[Line]:
    """Lines from the port until `seconds` pass (None: forever) or stop(line) is true."""
    try:
        s = serial.Serial(port, 115200, timeout=0.2, exclusive=True)
    except (serial.SerialException, OSError):
        raise port_problem(port) from None
    with s:
        yield from follow(s, port, seconds, stop)


def follow(s: serial.Serial, port: str, seconds: float | None,
           stop: Callable[[Line], bool] = lambda _l: False) -> Iterator[Line]:
    """Lines from an open port (kept open across a reset, so the boot's first lines are seen)."""
    end = None if seconds is None else time.monotonic() + seconds
    buf = b""
    while end is None or time.monotonic() < end:
        try:
            chunk = s.read(s.in_waiting or 1)
        except (serial.SerialException, OSError):
            raise port_problem(port) from None
        buf += chunk
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            line = classify(raw.decode(errors="replace").rstrip("\r"))
            yield line
            if stop(line):
                return

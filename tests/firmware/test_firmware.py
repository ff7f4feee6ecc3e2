"""Firmware v0, run under the real MicroPython interpreter, plus an ESP32 compile check.

The BLE glue (firmware/radio.py) is tested on the real virtual radio in test_firmware_radio.py."""

from __future__ import annotations

from pathlib import Path

from tests.mp.harness import ROOT, assert_all_pass
from tools.build import build

# The protocol modules the device imports (batch.py is CPython-only).
PROTOCOL = ["__init__", "hmac256", "keys", "rotation", "record", "command", "gatt", "devconfig"]


def test_scanlog() -> None:
    assert_all_pass("tests.firmware.mp_scanlog", heapsize="64K")


def test_device() -> None:
    assert_all_pass("tests.firmware.mp_device", heapsize="128K")


def test_config_and_tap_rate_limit() -> None:
    assert_all_pass("tests.firmware.mp_config", heapsize="128K")


def test_startup_without_ble() -> None:
    out = assert_all_pass("tests.firmware.mp_startup", heapsize="128K")
    print(out)


def test_everything_compiles_for_esp32(tmp_path: Path) -> None:
    """The technician's build (`mcode tools build`) compiles every firmware file and every
    protocol module the device imports with mpy-cross -march=xtensawin."""
    built = build(tmp_path)
    sources = {b.source for b in built}
    assert set((ROOT / "firmware").rglob("*.py")) <= sources
    assert {ROOT / "protocol" / f"{m}.py" for m in PROTOCOL} <= sources
    assert ROOT / "protocol" / "batch.py" not in sources
    mpys = [b for b in built if b.output.suffix == ".mpy"]
    as_source = [b for b in built if b.source.name in ("main.py", "__init__.py")]
    assert len(mpys) == len(built) - len(as_source) and len(as_source) >= 2
    for b in mpys:
        assert b.output.read_bytes()[:2] == b"M\x06"  # .mpy version 6
    assert (tmp_path / "main.py").read_text() == (ROOT / "firmware" / "main.py").read_text()
    print(f"{len(built)} files, {sum(b.size for b in built)} bytes")

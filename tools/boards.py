"""Board profiles (hardware/boards/*.json): checked at build time, before anything is flashed.

A profile is refused with a clear message when it names a GPIO twice, names a display driver the
firmware lacks (drivers are the firmware/display_*.py modules), or misses what the firmware reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.i18n import _

ROOT = Path(__file__).resolve().parents[1]
BOARDS = ROOT / "hardware" / "boards"
FIRMWARE = ROOT / "firmware"
PIN_KEYS = ("sda", "scl", "sck", "mosi", "miso", "cs", "dc", "rst", "busy")
MAX_GPIO = {"ESP32-WROOM-32": 39, "ESP32-S3": 48, "ESP32-C3": 21}
BUSES = {"ssd1306": "i2c", "ssd1680": "spi"}


class BoardError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    driver: str
    width: int
    height: int
    pins: dict[str, int]  # where -> GPIO
    heap_kib: int  # MicroPython's GC heap on this board (the virtual board's -X heapsize)


def drivers(firmware: Path = FIRMWARE) -> set[str]:
    """Display drivers the firmware has: firmware/display_<driver>.py (host is not a panel)."""
    return {p.stem.removeprefix("display_") for p in firmware.glob("display_*.py")} - {"host"}


def _int(d: dict[str, Any], key: str, where: str, name: str) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise BoardError(f"board {name}: {where}{key} must be an integer, got {v!r}")
    return v


def validate(path: Path, firmware: Path = FIRMWARE) -> Profile:
    """Parse and check one profile; raises BoardError naming the file and the fault."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BoardError(f"board profile {path}: cannot read: {e}") from e
    if not isinstance(d, dict):
        raise BoardError(f"board profile {path}: not a JSON object")
    name = d.get("board")
    if name != path.stem:
        raise BoardError(f"board profile {path}: \"board\" is {name!r}, must match the file name")
    disp = d.get("display")
    if not isinstance(disp, dict):
        raise BoardError(f"board {name}: no \"display\" section")
    have = drivers(firmware)
    driver = disp.get("driver")
    if driver not in have:
        raise BoardError(f"board {name}: display driver {driver!r} is not in the firmware "
                         f"(it has: {', '.join(sorted(have))}; add firmware/display_{driver}.py)")
    bus = BUSES.get(str(driver))
    if bus and disp.get("bus") != bus:
        raise BoardError(f"board {name}: display {driver} is on {bus}, profile says {disp.get('bus')!r}")
    width = _int(disp, "width", "display.", name)
    height = _int(disp, "height", "display.", name)
    if width <= 0 or height <= 0 or height % 8:
        raise BoardError(f"board {name}: display size {width}x{height} (height must be a multiple of 8)")
    pins: dict[str, int] = {}

    def pin(where: str, v: Any) -> None:
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise BoardError(f"board {name}: {where} must be a GPIO number, got {v!r}")
        top = MAX_GPIO.get(str(d.get("mcu")))
        if top is not None and v > top:
            raise BoardError(f"board {name}: {where} is GPIO{v}, the {d.get('mcu')} stops at GPIO{top}")
        for other, p in pins.items():
            if p == v:
                raise BoardError(f"board {name}: GPIO{v} is named twice: {other} and {where}")
        pins[where] = v

    for k in PIN_KEYS:
        if k in disp:
            pin("display." + k, disp[k])
    if driver == "ssd1680":
        for k in ("sck", "mosi", "cs", "dc", "rst", "busy"):
            if k not in disp:
                raise BoardError(f"board {name}: display ssd1680 needs pin display.{k}")
    if driver == "ssd1306":
        for k in ("sda", "scl"):
            if k not in disp:
                raise BoardError(f"board {name}: display ssd1306 needs pin display.{k}")
    for i, b in enumerate(d.get("buttons") or []):
        if not isinstance(b, dict):
            raise BoardError(f"board {name}: buttons[{i}] must be an object")
        pin(f"buttons[{i}] ({b.get('name', '?')})", b.get("pin"))
    bat = d.get("battery")
    if bat is not None:
        if not isinstance(bat, dict):
            raise BoardError(f"board {name}: battery must be an object or null")
        pin("battery.adc_pin", bat.get("adc_pin"))
        _int(bat, "low_mv", "battery.", name)  # the firmware's battery-low threshold
    elif d.get("power") == "battery":
        raise BoardError(f"board {name}: runs on battery but has no battery sense")
    if d.get("status_led") is not None:
        pin("status_led", d["status_led"])
    tx = _int(d, "ble_tx_power_dbm", "", name)
    if not -24 <= tx <= 20:
        raise BoardError(f"board {name}: ble_tx_power_dbm {tx} is out of range")
    heap = _int(d, "heap_kib", "", name)
    if not 32 <= heap <= 8192:
        raise BoardError(f"board {name}: heap_kib {heap} is out of range (32 to 8192 KiB)")
    return Profile(str(name), path, str(driver), width, height, pins, heap)


def profile_path(board: str, boards: Path = BOARDS) -> Path:
    p = boards / f"{board}.json"
    if not p.exists():
        have = ", ".join(sorted(q.stem for q in boards.glob("*.json")))
        raise BoardError(_("No board profile {board}. Use one of: {have} (see mcode tools boards).").format(
            board=board, have=have))
    return p


def validate_all(boards: Path = BOARDS, firmware: Path = FIRMWARE) -> list[Profile]:
    """Every profile in hardware/boards, or BoardError for the first bad one."""
    paths = sorted(boards.glob("*.json"))
    if not paths:
        raise BoardError(f"no board profiles in {boards}")
    return [validate(p, firmware) for p in paths]


def board_names(boards: Path = BOARDS) -> list[str]:
    """Every board profile's name (its file stem), sorted."""
    return sorted(p.stem for p in boards.glob("*.json"))

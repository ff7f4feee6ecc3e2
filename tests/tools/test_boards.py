"""Board profiles: the real ones pass, bad ones are refused with a message naming the fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tools import boards
from tools.build import build


def _good() -> dict[str, Any]:
    return json.loads((boards.BOARDS / "label-esp32c3-ssd1680.json").read_text())


def _write(dirp: Path, d: dict[str, Any]) -> Path:
    p = dirp / f"{d['board']}.json"
    p.write_text(json.dumps(d))
    return p


def test_real_profiles_are_accepted() -> None:
    got = {p.name: p for p in boards.validate_all()}
    assert {"kiosk-esp32-ssd1306", "label-esp32c3-ssd1680"} <= set(got)
    assert (got["kiosk-esp32-ssd1306"].width, got["kiosk-esp32-ssd1306"].height) == (128, 64)
    assert (got["label-esp32c3-ssd1680"].driver, got["label-esp32c3-ssd1680"].width) == ("ssd1680", 296)
    assert boards.drivers() >= {"ssd1306", "ssd1680"}


def test_every_board_has_bom_wiring_and_power_budget() -> None:
    for p in boards.BOARDS.glob("*.json"):
        md = p.with_suffix(".md").read_text().lower()
        for section in ("bom", "wiring", "power budget"):
            assert section in md, (p.name, section)


def test_pin_named_twice_is_refused(tmp_path: Path) -> None:
    d = _good()
    d["display"]["dc"] = d["display"]["cs"]  # cs and dc on one GPIO
    with pytest.raises(boards.BoardError, match=r"GPIO7 is named twice: display.cs and display.dc"):
        boards.validate(_write(tmp_path, d))


def test_button_on_a_display_pin_is_refused(tmp_path: Path) -> None:
    d = _good()
    d["buttons"][1]["pin"] = d["display"]["busy"]
    with pytest.raises(boards.BoardError, match=r"GPIO3 is named twice: display.busy and buttons\[1\]"):
        boards.validate(_write(tmp_path, d))


def test_led_on_battery_sense_is_refused(tmp_path: Path) -> None:
    d = _good()
    d["status_led"] = d["battery"]["adc_pin"]
    with pytest.raises(boards.BoardError, match="named twice: battery.adc_pin and status_led"):
        boards.validate(_write(tmp_path, d))


def test_unknown_display_driver_is_refused(tmp_path: Path) -> None:
    d = _good()
    d["display"]["driver"] = "il0373"
    with pytest.raises(boards.BoardError, match=r"display driver 'il0373' is not in the firmware "
                                               r"\(it has: ssd1306, ssd1680"):
        boards.validate(_write(tmp_path, d))


@pytest.mark.parametrize("change, message", [
    (lambda d: d["display"].pop("busy"), "needs pin display.busy"),
    (lambda d: d.update(battery=None), "on battery but has no battery sense"),
    (lambda d: d["battery"].pop("low_mv"), "battery.low_mv must be an integer"),
    (lambda d: d["display"].update(mosi=30), "GPIO30, the ESP32-C3 stops at GPIO21"),
    (lambda d: d["display"].update(height=130), "multiple of 8"),
    (lambda d: d.update(board="other"), "must match the file name"),
    (lambda d: d.pop("heap_kib"), "heap_kib must be an integer"),
    (lambda d: d.update(heap_kib=16), "heap_kib 16 is out of range"),
])
def test_other_faults_are_refused(tmp_path: Path, change: Any, message: str) -> None:
    d = _good()
    p = tmp_path / "label-esp32c3-ssd1680.json"
    change(d)
    p.write_text(json.dumps(d))
    with pytest.raises(boards.BoardError, match=message):
        boards.validate(p)


def test_build_refuses_a_bad_profile(tmp_path: Path) -> None:
    bdir = tmp_path / "boards"
    bdir.mkdir()
    d = _good()
    d["display"]["driver"] = "st7789"
    _write(bdir, d)
    with pytest.raises(boards.BoardError, match="display driver 'st7789' is not in the firmware"):
        build(tmp_path / "out", boards_dir=bdir)
    assert not (tmp_path / "out").exists()  # refused before compiling anything


def test_build_ships_the_board_profile(tmp_path: Path) -> None:
    built = build(tmp_path, board="label-esp32c3-ssd1680")
    assert json.loads((tmp_path / "board.json").read_text())["display"]["driver"] == "ssd1680"
    assert any(b.output == tmp_path / "board.json" for b in built)
    with pytest.raises(boards.BoardError, match="No board profile nope\\."):
        build(tmp_path / "x", board="nope")


def test_technician_build_packs_a_romfs_image(tmp_path: Path) -> None:
    from mpremote.romfs import VfsRomWriter
    from typer.testing import CliRunner

    from mcode.cli import app

    r = CliRunner().invoke(app, ["tools", "build", "--out", str(tmp_path / "fw"),
                                 "--board", "label-esp32c3-ssd1680"])
    assert r.exit_code == 0, r.output
    image = (tmp_path / "fw" / "firmware.romfs").read_bytes()
    assert image.startswith(VfsRomWriter.ROMFS_HEADER)
    # Every module is in the image by name, compiled with its path on the device as source name.
    for name in (b"device.mpy", b"scanlog.mpy", b"hmac256.mpy", b"display_ssd1680.mpy",
                 b"protocol/record.py"):
        assert name in image, name
    assert b"/work/" not in image and str(tmp_path).encode() not in image  # no build-machine paths

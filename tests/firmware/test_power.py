"""Power under the real MicroPython interpreter: a battery board's loop sleeps between events
(firmware/sleep.py counts it), a mains board never loads the hook (mp_sleep.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.mp.harness import ROOT, assert_all_pass


def test_battery_board_sleeps_and_mains_board_does_not(tmp_path: Path) -> None:
    (tmp_path / "label").mkdir()
    label = ROOT / "hardware" / "boards" / "label-esp32c3-ssd1680.json"
    shutil.copyfile(label, tmp_path / "label" / "board.json")
    out = assert_all_pass("tests.firmware.mp_sleep", heapsize="128K", cwd=tmp_path)
    assert "PASS test_battery_board_sleeps_between_events" in out
    assert "PASS test_a_mains_board_never_sleeps" in out

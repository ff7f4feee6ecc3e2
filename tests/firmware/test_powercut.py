"""The scan log on littlefs under power cuts, run in the real MicroPython interpreter
(tests/firmware/mp_powercut.py on the block device in tests/firmware/powercut_bdev.py)."""

from __future__ import annotations

import re

from tests.mp.harness import assert_all_pass


def test_scanlog_survives_power_cuts() -> None:
    out = assert_all_pass("tests.firmware.mp_powercut", heapsize="1M")
    cuts = [int(n) for n in re.findall(r"(\d+) cuts checked", out)]
    assert len(cuts) == 2 and min(cuts) >= 200, out
    print(out)

"""Boot bookkeeping (firmware/bootstate.py) under power cuts at every flash write, in the real
MicroPython interpreter (tests/firmware/mp_bootstate_cut.py on tests/firmware/powercut_bdev.py)."""

from __future__ import annotations

import re

from tests.mp.harness import assert_all_pass


def test_boot_state_survives_power_cuts() -> None:
    out = assert_all_pass("tests.firmware.mp_bootstate_cut", heapsize="1M")
    cuts = [int(n) for n in re.findall(r"(\d+) cuts checked", out)]
    assert len(cuts) == 1 and cuts[0] >= 32, out
    assert "PASS test_begin_boots_when_the_state_cannot_be_written" in out, out

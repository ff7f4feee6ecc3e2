# Renders every board profile's screen on the host display (MicroPython): run
# with the cwd holding one folder per board, each with its board.json; writes
# <scenario>.pbm next to it. Goes through board.load and hw.make_display.
import os

import board
import hw
from display import NOT_SYNCED, ST_BATTERY_LOW, ST_CLOCK_STALE, ST_CLOCK_UNSET, ST_NO_GATEWAY

LABEL = "Oat milk 1L"
SCENARIOS = (
    ("synced", "4919-27", "mc-0708"),
    ("unsynced", None, NOT_SYNCED),
    ("no_gateway", "4919-27", ST_NO_GATEWAY),
    ("battery_low", "4919-27", ST_BATTERY_LOW),
    ("clock_unset", None, ST_CLOCK_UNSET),
    ("clock_stale", "4919-27", ST_CLOCK_STALE),
    ("all_marks", "4919-27", ST_NO_GATEWAY | ST_BATTERY_LOW | ST_CLOCK_UNSET),
)


class Cfg:
    display = None
    i2c = None


def test_render_every_board():
    n = 0
    for name in sorted(os.listdir(".")):
        root = name + "/"
        try:
            os.stat(root + board.FILE)
        except OSError:
            continue
        b = board.load(root)
        d = hw.make_display(Cfg(), root)
        assert (d.w, d.h) == (b.width, b.height)
        for scen, code, status in SCENARIOS:
            d.show(code, LABEL, status)
            os.rename(root + "display.pbm", root + scen + ".pbm")
        n += 1
    assert n >= 2, n

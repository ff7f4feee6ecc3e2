# Sleep between events (firmware/sleep.py) under MicroPython: a battery board's
# loop is asleep most of the time it idles, a mains board never loads sleep.py.
# Needs the label's board.json in the cwd's label/ folder (tests/firmware/test_power.py).
import asyncio
import json
import sys

import main
from tests.firmware import fwtest as T


def _run(root, seconds):
    return asyncio.run(main.run(root, ble=False, seconds=seconds))


def test_battery_board_sleeps_between_events():
    root = T.flashdir()
    try:
        with open("label/board.json") as f:
            prof = json.load(f)
        with open(root + "board.json", "w") as f:
            json.dump(prof, f)
        dev = _run(root, 1.5)
        dev.log.close()
        import sleep

        asleep, idle, naps = sleep.slept[0], sleep.slept[1], sleep.slept[2]
        # 1.5 s with no radio: the loop waits for the display and the feeder; a nap per wait.
        assert naps >= 1 and asleep >= 1000, (asleep, idle, naps)
        assert idle == 0, idle  # no central ever connected
    finally:
        T.wipe(root)


def test_a_mains_board_never_sleeps():
    # Named to run first (the runner goes by name): the hook, once in, stays for the process.
    root = T.flashdir()  # no board.json: the kiosk, on mains
    try:
        dev = _run(root, 0.3)
        dev.log.close()
        assert "sleep" not in sys.modules
    finally:
        T.wipe(root)

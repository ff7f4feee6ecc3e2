# Run alone by test_robust.py, in its own process, from a flash directory as the
# cwd: the real start-up (main.run) with the real host watchdog (hw.make_watchdog)
# and a panel whose first draw hangs the loop for good. The watchdog must kill
# this process; if the test ever returns, it failed.
import asyncio
import json

import main
from tests.firmware import fwtest as T


class Hang:
    def show(self, code, label, status, left=0):
        while True:
            pass


def test_hung_loop_is_reset():
    with open("config.json", "w") as f:
        json.dump(T.CFG, f)
    asyncio.run(main.run("", ble=False, display=Hang(), wdt_ms=300))
    raise AssertionError("main.run returned")

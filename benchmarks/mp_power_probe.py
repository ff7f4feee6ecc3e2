# MicroPython: run the real firmware (main.run) for a bounded time and print how
# the time went, from firmware/sleep.py's counters: asleep (the loop idle, no
# central connected: lightsleep on the chip), idle while connected, and the
# rest, the CPU running; plus the redraws. Run from the flash dir.
import sys

if ".frozen" not in sys.path:  # romboot has added it
    sys.path.append(".frozen")

import asyncio  # noqa: E402
import time  # noqa: E402

import main  # noqa: E402


async def go(seconds):
    t0 = time.ticks_ms()
    dev = await main.run(seconds=seconds)
    total = time.ticks_diff(time.ticks_ms(), t0)
    try:
        import sleep

        s = sleep.slept
    except ImportError:
        s = [0, 0, 0]
    shows = getattr(dev._display, "shows", -1)
    print("POWER total=%d asleep=%d idle_connected=%d naps=%d redraws=%d head=%d" % (
        total, s[0], s[1], s[2], shows, dev.log.head))


asyncio.run(go(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0))

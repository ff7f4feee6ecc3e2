# MicroPython: run the real firmware (main.run) and sample the live GC heap
# (after a collect) every 20 ms, and the allocated heap between collects every
# 5 ms; print the figures when the bounded run ends. Run from the flash dir.
import sys

if ".frozen" not in sys.path:  # romboot has added it
    sys.path.append(".frozen")

import asyncio  # noqa: E402
import gc  # noqa: E402

import micropython  # noqa: E402

gc.collect()
BASE = gc.mem_alloc()  # the interpreter before any firmware is imported

# The host's bluetooth module is Python in this heap; on the ESP32 it is C and
# its buffers live in the IDF heap. Imported first so its share can be told.
import bluetooth  # noqa: E402, F401

gc.collect()
SHIM = gc.mem_alloc() - BASE

import main  # noqa: E402

peak = [0]
live = [0]


async def probe():
    n = 0
    while True:
        a = gc.mem_alloc()
        if a > peak[0]:
            peak[0] = a
        n += 1
        if n % 4 == 0:
            gc.collect()
            a = gc.mem_alloc()
            if a > live[0]:
                live[0] = a
        await asyncio.sleep_ms(5)


async def go(seconds):
    t = asyncio.create_task(probe())
    dev = await main.run(seconds=seconds)
    t.cancel()
    gc.collect()
    print("HEAP base=%d shim=%d peak=%d live_peak=%d live_end=%d free_end=%d head=%d" % (
        BASE, SHIM, peak[0], live[0], gc.mem_alloc(), gc.mem_free(), dev.log.head))
    # The names interned at run time: the unix port's next qstr pool costs ~7 KB at once.
    micropython.qstr_info()


asyncio.run(go(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0))

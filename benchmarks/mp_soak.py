# MicroPython soak of the device logic: N taps and R code rotations through the
# firmware's Device (the same code the BLE glue calls), on the host display, with
# a radio that only counts receipts. Prints heap figures: bytes allocated per tap
# and per rotation (GC off around a measured run), and the live heap after
# warm-up and at the end (growth = a leak). Run from a flash dir holding only
# board.json (the profile whose display is drawn).
import sys

if ".frozen" not in sys.path:
    sys.path.append(".frozen")

import gc  # noqa: E402
import json  # noqa: E402

import clock  # noqa: E402
import config  # noqa: E402
import hw  # noqa: E402
from device import Device  # noqa: E402


class CountingRadio:
    flag = None

    def __init__(self):
        self.receipts = 0

    def tap_receipt(self, conn, data):
        if len(data) == 40:
            self.receipts += 1

    def control_reply(self, conn, data):
        pass

    def log_frame(self, conn, data):
        return True

    def set_info(self, data):
        pass


class SteppedClock(clock.Clock):
    """The firmware's clock, set, which the soak moves on by whole windows."""

    def __init__(self, t):
        super().__init__()
        self.set(t, 0)

    def step(self, s):
        self._sec += s


def live():
    gc.collect()
    return gc.mem_alloc()


def per_call(fn, n):
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for _ in range(n):
        fn()
    b = gc.mem_alloc()
    gc.enable()
    return (b - a) / n


def main(taps, rotations):
    with open("config.json", "w") as f:
        json.dump({"device_id": "0102030405060708", "key": "00" * 32, "base": "4919", "slot": 1, "slots": 4,
                   "digits": 2, "period": 60, "label": "Soak", "name": "mc-0708", "fw": 1}, f)
    cfg = config.load("")
    radio = CountingRadio()
    clk = SteppedClock(1763900000)
    # The display of the board profile in the flash dir (board.json), drawn on the host.
    dev = Device(cfg, "", radio, hw.make_display(cfg, ""), clock=clk)
    tap = bytes([1]) + b"\x11" * 8

    def do_tap():
        dev.on_tap(0, tap)

    def collect():
        # A gateway's sweep: everything so far is stored upstream, so the log compacts.
        dev.log.ack(dev.log.head)

    def do_rotation():
        clk.step(cfg.period)
        dev.refresh()

    for i in range(600):  # warm-up: first allocations of buffers, caches, file handles, segments
        do_tap()
        if i % 100 == 99:
            collect()
    for _ in range(20):
        do_rotation()
    warm = live()
    per_tap = per_call(do_tap, 10)
    per_rot = per_call(do_rotation, 4)

    def do_code():  # the rotation less its redraw: the code's HMAC and its text
        clk.step(cfg.period)
        dev.code()

    per_code = per_call(do_code, 4)
    every = max(1, taps // rotations)
    for i in range(taps):
        do_tap()
        if i % every == 0:
            do_rotation()
        if i % 100 == 99:
            collect()
    end = live()
    print("SOAK " + json.dumps({"taps": taps + 610, "rotations": taps // every + 28,
                                "receipts": radio.receipts,
                                "live_after_warmup": warm, "live_end": end, "growth": end - warm,
                                "bytes_per_tap": per_tap, "bytes_per_rotation": per_rot,
                                "bytes_per_code": per_code,
                                "heap_total": gc.mem_alloc() + gc.mem_free()}))


main(int(sys.argv[1]), int(sys.argv[2]))

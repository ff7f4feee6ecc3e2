# The clock's set/drifting/unset state and the status marks, on screen and in
# INFO, under MicroPython: device.Device driven through a recording radio and a
# recording display. Time passing is simulated (fwtest.advance), at once.
import asyncio
import json
import struct

import board
import config
import hw
import main
from clock import Clock
from device import Device
from display import ST_BATTERY_LOW, ST_CLOCK_STALE, ST_CLOCK_UNSET, ST_NO_GATEWAY
from protocol import command, gatt
from tests.firmware import fwtest as T

T0 = 1767225600 + 7  # 2026-01-01 00:00:07
# The firmware's thresholds (private consts there, to spare the heap their names):
STALE_S = 86400  # clock.py: a day without a sync and the clock is stale
JUMP_S = 10  # clock.py: a correction this large and the clock is stale until the next sync
NO_GATEWAY_S = 3600  # device.py: no READ or ACK this long and the no-gateway mark shows
LABEL = T.CFG["label"]


def _ctl(dev, fr, conn=2):
    return command.unpack_reply(asyncio.run(dev.on_control(conn, fr)))


def _time(dev, ctr, t):
    return _ctl(dev, T.frame(dev.nonce, command.OP_TIME, ctr, struct.pack(">IH", t, 0)))


def _status(radio):
    return gatt.unpack_info(radio.info)[6]


# --- the clock -----------------------------------------------------------------
def test_clock_set_stale_unset():
    c = Clock()
    assert not c.is_set() and not c.stale() and c.now() is None
    c.set(T0, 0)
    assert c.is_set() and not c.stale()
    T.advance(c, STALE_S - 1)
    assert not c.stale()
    T.advance(c, 1)
    assert c.stale()  # a day without a sync
    c.set(c.now() + JUMP_S - 1, 0)
    assert not c.stale()  # a sync with a small correction
    c.set(c.now() - JUMP_S, 0)
    assert c.stale()  # it was far off: stale until the next sync
    c.set(c.now(), 0)
    assert not c.stale()


def test_clock_state_in_info_and_on_screen():
    root = T.flashdir()
    try:
        radio = T.FakeRadio(root)
        disp = T.RecDisplay()
        dev = Device(config.load(root), root, radio, disp)

        def clock_mark():
            return disp.shows[-1][2] & (ST_CLOCK_UNSET | ST_CLOCK_STALE)

        assert dev.refresh() == 30000  # unset: no code, no rotation, a wake every 30 s
        assert disp.shows == [(None, LABEL, ST_CLOCK_UNSET)] and _status(radio) == 0
        _time(dev, 1, T0)
        dev.refresh()
        code = dev.code()
        assert code and disp.shows[-1] == (code, LABEL, 0)
        assert _status(radio) == gatt.STATUS_CLOCK_SET
        T.advance(dev.clock, STALE_S)
        dev.refresh()  # INFO follows without any command
        assert disp.shows[-1][0] == dev.code() and clock_mark() == ST_CLOCK_STALE  # the code stays
        assert _status(radio) == gatt.STATUS_CLOCK_SET | gatt.STATUS_CLOCK_STALE
        _time(dev, 2, dev.clock.now())
        dev.refresh()
        assert clock_mark() == 0 and _status(radio) == gatt.STATUS_CLOCK_SET
        _time(dev, 3, dev.clock.now() + 3600)  # an hour off: drifting until the next sync
        dev.refresh()
        assert clock_mark() == ST_CLOCK_STALE
        assert _status(radio) == gatt.STATUS_CLOCK_SET | gatt.STATUS_CLOCK_STALE
        dev.log.close()
    finally:
        T.wipe(root)


# --- status marks ------------------------------------------------------------
def test_status_marks_redrawn_only_when_they_change():
    root = T.flashdir()
    try:
        radio = T.FakeRadio(root)
        disp = T.RecDisplay()
        bat = [None]
        dev = Device(config.load(root), root, radio, disp, battery=(lambda: bat[0], 3550))
        _time(dev, 1, T0)
        dev.refresh()
        dev.refresh()
        assert disp.shows == [(dev.code(), LABEL, 0)]  # one draw for two checks
        # No gateway has read or acked since boot: the mark shows after the grace period.
        T.advance(dev.clock, NO_GATEWAY_S - 1)
        _time(dev, 2, dev.clock.now())  # a TIME alone is not a gateway collecting
        dev.refresh()
        assert disp.shows[-1][2] == 0
        T.advance(dev.clock, 1)
        dev.refresh()
        assert disp.shows[-1][2] == ST_NO_GATEWAY
        n = len(disp.shows)
        dev.refresh()
        assert len(disp.shows) == n
        # A READ clears it, and wakes the display task to redraw at once.
        dev.on_mtu(2, gatt.WANT_MTU)
        dev.clock_changed.clear()
        assert _ctl(dev, T.frame(dev.nonce, command.OP_READ, 3, struct.pack(">I", 0)))[1] == command.OK
        assert dev.clock_changed.is_set()
        dev.refresh()
        assert disp.shows[-1][2] == 0
        # An hour later, an ACK does the same.
        T.advance(dev.clock, NO_GATEWAY_S)
        _time(dev, 4, dev.clock.now())
        dev.refresh()
        assert disp.shows[-1][2] == ST_NO_GATEWAY
        assert _ctl(dev, T.frame(dev.nonce, command.OP_ACK, 5, struct.pack(">I", 1)))[1] == command.OK
        dev.refresh()
        assert disp.shows[-1][2] == 0
        # Battery: low under low_mv, on screen and in INFO; clears only 50 mV above it.
        n = len(disp.shows)
        bat[0] = 3600
        dev.refresh()
        assert len(disp.shows) == n
        bat[0] = 3549
        dev.refresh()
        assert disp.shows[-1][2] == ST_BATTERY_LOW
        assert _status(radio) == gatt.STATUS_CLOCK_SET | gatt.STATUS_BATTERY_LOW
        bat[0] = 3580
        dev.refresh()
        assert len(disp.shows) == n + 1  # still low: no redraw
        bat[0] = None  # a failed reading changes nothing
        dev.refresh()
        assert len(disp.shows) == n + 1
        bat[0] = 3600
        dev.refresh()
        assert disp.shows[-1][2] == 0 and _status(radio) == gatt.STATUS_CLOCK_SET
        # Marks combine.
        bat[0] = 3000
        T.advance(dev.clock, STALE_S)
        dev.refresh()
        assert disp.shows[-1][2] == ST_BATTERY_LOW | ST_CLOCK_STALE | ST_NO_GATEWAY
        # Every draw showed something new.
        for a, b in zip(disp.shows, disp.shows[1:]):
            assert a != b
        dev.log.close()
    finally:
        T.wipe(root)


def test_battery_sense_from_the_board_profile():
    with open("hardware/boards/label-esp32c3-ssd1680.json") as f:
        label = board.Board(json.load(f))
    with open("hardware/boards/kiosk-esp32-ssd1306.json") as f:
        kiosk = board.Board(json.load(f))
    read_mv, low_mv = hw.make_battery(label)
    assert low_mv == 3550 and read_mv() is None  # the host stand-in: unknown until set
    hw.battery_mv = 3700
    assert read_mv() == 3700
    assert hw.make_battery(kiosk) is None  # mains
    # main.boot takes it from board.json in the flash root.
    root = T.flashdir()
    try:
        with open(root + board.FILE, "w") as f:
            json.dump({"board": "label", "display": {"width": 296, "height": 128},
                       "battery": {"adc_pin": 0, "divider": 2.0, "low_mv": 3400}}, f)
        radio = T.FakeRadio(root)
        dev, _ = main.boot(root, radio=radio)
        dev.refresh()
        assert not _status(radio) & gatt.STATUS_BATTERY_LOW
        hw.battery_mv = 3300
        dev.refresh()
        assert _status(radio) & gatt.STATUS_BATTERY_LOW
        assert T.read(root + "display.pbm").startswith(b"P4\n296 128\n")
        dev.log.close()
    finally:
        hw.battery_mv = None
        T.wipe(root)

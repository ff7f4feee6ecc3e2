# SSD1680 2.9" e-paper, 296x128, on SPI (the shelf label panel). Needs
# machine.SPI/Pin on the device; tests drive it with fake pins and SPI.
#
# Buffer layout: the screen is drawn landscape (296 wide, 128 high) into a
# MONO_VLSB framebuf. The panel's RAM is portrait: 128 sources (16 bytes, MSB
# first) by 296 gates. With data entry mode 0x06 (address counter moves along
# the gates first, gates up, source bytes down) landscape x is the gate and
# landscape y is 127 - source, so each VLSB byte is exactly one RAM byte, with
# no copy or rotation pass, and VLSB rows of 8 pixels follow each other in RAM
# order. So the driver keeps only a band of display.BAND rows (296 bytes, not
# 4,736): one RAM write command, then each band rendered and sent as the next
# data bytes (the controller's address counter carries on across them).
#
# Refresh: a full refresh (all pixels flashed) first, then partial refreshes
# (display mode 2: only changed pixels move, no flashing) for code changes,
# and a full refresh again every `full_every` partials or `full_every_s`
# seconds against ghosting. The busy pin is waited for *before* the next
# command, not after the update, so the MCU is free while the panel refreshes;
# a panel stuck busy raises OSError(ETIMEDOUT, 110) after busy_ms.
import time

import framebuf
from micropython import const

from display import BAND, Display, Renderer

# Private consts (the leading _): inlined by the compiler, so no globals or
# names at run time. tests/firmware/mp_epaper.py takes them from the datasheet.
_W = const(296)
_H = const(128)
_ETIMEDOUT = const(110)

_SW_RESET = const(0x12)
_DRIVER_OUTPUT = const(0x01)
_DATA_ENTRY = const(0x11)
_RAM_X = const(0x44)
_RAM_Y = const(0x45)
_BORDER = const(0x3C)
_UPDATE_CTRL1 = const(0x21)
_UPDATE_CTRL2 = const(0x22)
_TEMP_SENSOR = const(0x18)
_X_COUNTER = const(0x4E)
_Y_COUNTER = const(0x4F)
_WRITE_BW = const(0x24)  # the new image
_WRITE_OLD = const(0x26)  # "red" RAM: the previous image, compared in mode 2
_ACTIVATE = const(0x20)
_FULL = const(0xF7)  # clock + analog on, load temp + LUT, display mode 1, off
_PARTIAL = const(0xFF)  # the same with display mode 2
_ENTRY_MODE = const(0x06)


class RefreshPolicy:
    """Which refresh the next update gets. Pure: the caller passes ticks_ms."""

    def __init__(self, every=20, max_ms=3600000):
        self.every = every
        self.max_ms = max_ms
        self.partials = 0
        self.last_full = None

    def full(self, now):
        return (self.last_full is None or self.partials >= self.every
                or time.ticks_diff(now, self.last_full) >= self.max_ms)

    def done(self, full, now):
        if full:
            self.partials = 0
            self.last_full = now
        else:
            self.partials += 1


class Ssd1680Display(Display):
    def __init__(self, spi, cs, dc, rst, busy, w=_W, h=_H, full_every=20, full_every_s=3600,
                 busy_ms=10000, steps=0):
        self._spi = spi
        self._cs = cs
        self._dc = dc
        self._rst = rst
        self._busy = busy
        self.w = w
        self.h = h
        self._busy_ms = busy_ms
        self._buf = bytearray(w * BAND // 8)
        self._fb = framebuf.FrameBuffer(self._buf, w, BAND, framebuf.MONO_VLSB)
        self._r = Renderer(w, h, ink=0)  # RAM bit 0 is black
        self._shown = None  # (code, face, status, left) last sent to the panel
        self.steps = steps
        self._c = bytearray(1)
        g = w - 1  # last gate
        self._xwin = bytes((h // 8 - 1, 0))
        self._ywin = bytes((0, 0, g & 0xFF, g >> 8))
        self._xstart = bytes((h // 8 - 1,))
        self._drv = bytes((g & 0xFF, g >> 8, 0))
        self.policy = RefreshPolicy(full_every, full_every_s * 1000)
        self._old_stale = False  # the old-image RAM still lacks what is on screen
        self.refreshes = 0
        cs(1)
        self.init()

    def _cmd(self, c, data=None):
        self._c[0] = c
        self._cs(0)
        self._dc(0)
        self._spi.write(self._c)
        self._cs(1)
        if data is not None:
            self._data(data)

    def _data(self, data):
        self._cs(0)
        self._dc(1)
        self._spi.write(data)
        self._cs(1)

    def wait(self):
        t0 = time.ticks_ms()
        while self._busy():
            if time.ticks_diff(time.ticks_ms(), t0) > self._busy_ms:
                raise OSError(_ETIMEDOUT)
            time.sleep_ms(2)

    def init(self):
        r = self._rst
        r(1)
        time.sleep_ms(10)
        r(0)
        time.sleep_ms(10)
        r(1)
        time.sleep_ms(10)
        self.wait()
        self._cmd(_SW_RESET)
        self.wait()
        self._cmd(_DRIVER_OUTPUT, self._drv)
        self._cmd(_DATA_ENTRY, b"\x06")
        self._cmd(_RAM_X, self._xwin)
        self._cmd(_RAM_Y, self._ywin)
        self._cmd(_BORDER, b"\x05")
        self._cmd(_UPDATE_CTRL1, b"\x00\x80")  # normal RAM, sources S8..S167 (128 px)
        self._cmd(_TEMP_SENSOR, b"\x80")  # internal sensor: the LUT follows temperature
        self.wait()
        self.policy.last_full = None  # RAM and screen unknown after a reset: full next

    def _write(self, ram, screen):
        """Render `screen` (code, face, status, left) band by band into RAM `ram`."""
        self._cmd(_X_COUNTER, self._xstart)
        self._cmd(_Y_COUNTER, b"\x00\x00")
        self._cmd(ram)
        mv = memoryview(self._buf)
        h = self.h
        for top in range(0, h, BAND):
            bh = min(BAND, h - top)
            self._r.render(self._fb, screen[0], screen[1], screen[2], top, bh, screen[3], self.steps)
            self._data(mv[0:bh // 8 * self.w])

    def show(self, code, face, status, left=0):
        self.wait()  # the previous refresh, if any, is over
        if self._old_stale:  # the old-image RAM gets what the screen now shows
            self._write(_WRITE_OLD, self._shown)
            self._old_stale = False
        screen = self._shown = (code, face, status, left)
        now = time.ticks_ms()
        full = self.policy.full(now)
        self._cmd(_BORDER, b"\x05" if full else b"\x80")  # border follows only on full
        self._write(_WRITE_BW, screen)
        if full:
            self._write(_WRITE_OLD, screen)
        else:
            self._old_stale = True
        self._cmd(_UPDATE_CTRL2, b"\xf7" if full else b"\xff")
        self._cmd(_ACTIVATE)
        self.policy.done(full, now)
        self.refreshes += 1

# Host "panel": renders a w x h screen (the board profile's size; 128x64
# without one) and writes it as a binary PBM (P4 rows are MSB-first with
# 1 = black: exactly MONO_HLSB), plus display.txt holding just the code on
# screen (empty line while unsynced), which the simulated shopper reads. Like
# the e-paper driver it keeps only a band of display.BAND rows and writes the
# image band by band, so the host's heap holds what the device's would. Both
# files are written to a temp name and renamed so a reader never sees a
# half-written file.
import os

import framebuf
from micropython import const

from display import BAND, Display, Renderer

_PBM = const("display.pbm")
_TXT = const("display.txt")


class HostDisplay(Display):
    def __init__(self, root="", w=128, h=64, steps=0):
        self._root = root
        self.w = w
        self.h = h
        self._header = b"P4\n%d %d\n" % (w, h)
        self._row = (w + 7) // 8
        self._buf = bytearray(self._row * BAND)
        self._fb = framebuf.FrameBuffer(self._buf, w, BAND, framebuf.MONO_HLSB)
        self._r = Renderer(w, h)
        self.code = None
        self.steps = steps
        self.shows = 0  # redraws, for the power model (benchmarks/firmware_power.py)

    def _open(self, name):
        return open(self._root + name + ".tmp", "wb")

    def _done(self, name):
        p = self._root + name
        os.rename(p + ".tmp", p)

    def show(self, code, face, status, left=0):
        mv = memoryview(self._buf)
        with self._open(_PBM) as f:
            f.write(self._header)
            for top in range(0, self.h, BAND):
                bh = min(BAND, self.h - top)
                self._r.render(self._fb, code, face, status, top, bh, left, self.steps)
                f.write(mv[0:bh * self._row])
        self._done(_PBM)
        with self._open(_TXT) as f:
            f.write((code or "").encode())
            f.write(b"\n")
        self._done(_TXT)
        self.code = code
        self.shows += 1

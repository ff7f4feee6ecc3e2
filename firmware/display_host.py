# Host "panel": renders into a w x h MONO_HLSB framebuf (the board profile's
# size; 128x64 without one) and writes it as a binary PBM (P4 rows are
# MSB-first with 1 = black: exactly MONO_HLSB), plus display.txt holding just
# the code on screen (empty line while unsynced), which the simulated shopper
# reads. Both are written to a temp name and renamed so a reader never sees a
# half-written file.
import os

import framebuf

from display import H, W, Display, Renderer

PBM = "display.pbm"
TXT = "display.txt"


class HostDisplay(Display):
    def __init__(self, root="", w=W, h=H):
        self._root = root
        self.w = w
        self.h = h
        self._header = b"P4\n%d %d\n" % (w, h)
        self._buf = bytearray((w + 7) // 8 * h)
        self._fb = framebuf.FrameBuffer(self._buf, w, h, framebuf.MONO_HLSB)
        self._r = Renderer(w, h)
        self.code = None

    def _put(self, name, *parts):
        p = self._root + name
        with open(p + ".tmp", "wb") as f:
            for b in parts:
                f.write(b)
        os.rename(p + ".tmp", p)

    def show(self, code, label, status):
        self._r.render(self._fb, code, label, status)
        self._put(PBM, self._header, self._buf)
        self._put(TXT, (code or "").encode(), b"\n")
        self.code = code

# Host "panel": renders into a 128x64 MONO_HLSB framebuf and writes it as a
# binary PBM (P4 rows are MSB-first with 1 = black: exactly MONO_HLSB), plus
# display.txt holding just the code on screen (empty line while unsynced), which
# the simulated shopper reads. Both are written to a temp name and renamed so a
# reader never sees a half-written file.
import os

import framebuf

from display import H, W, Display, Renderer

PBM = "display.pbm"
TXT = "display.txt"
_HEADER = b"P4\n128 64\n"


class HostDisplay(Display):
    def __init__(self, root=""):
        self._root = root
        self._buf = bytearray(W * H // 8)
        self._fb = framebuf.FrameBuffer(self._buf, W, H, framebuf.MONO_HLSB)
        self._r = Renderer()
        self.code = None

    def _put(self, name, *parts):
        p = self._root + name
        with open(p + ".tmp", "wb") as f:
            for b in parts:
                f.write(b)
        os.rename(p + ".tmp", p)

    def show(self, code, label, status):
        self._r.render(self._fb, code, label, status)
        self._put(PBM, _HEADER, self._buf)
        self._put(TXT, (code or "").encode(), b"\n")
        self.code = code

# Display interface and the one renderer every panel shares.
#   show(code, label, status): code is "4919-27", or None while the clock is
#   unset (then no code is drawn: a wrong code is worse than none).
# Drivers own a framebuf of W x H and call render() into it; pixels set to 1
# are "ink" (black on e-paper/PBM, lit on OLED).
import framebuf
from micropython import const

W = const(128)
H = const(64)
_MAXCHARS = const(16)  # W // 8: the widest line the 8x8 font can draw
NOT_SYNCED = "not synced"


class Display:
    """What the device needs from any panel."""

    def show(self, code, label, status):
        raise NotImplementedError


class Renderer:
    """Draws the label, a big code and a status line. Keeps one scratch buffer
    for scaling the 8x8 font, so a redraw allocates only its strings."""

    def __init__(self):
        self._sbuf = bytearray(_MAXCHARS * 8)  # (_MAXCHARS*8) x 8 px, 1 bit each
        self._scratch = framebuf.FrameBuffer(self._sbuf, _MAXCHARS * 8, 8, framebuf.MONO_HLSB)

    def big_text(self, fb, text, x0, y0, sx, sy):
        # The font is only 8x8, so draw it small and blow each pixel up to a block.
        s = self._scratch
        s.fill(0)
        s.text(text, 0, 0, 1)
        for y in range(8):
            for x in range(len(text) * 8):
                if s.pixel(x, y):
                    fb.fill_rect(x0 + x * sx, y0 + y * sy, sx, sy, 1)

    def render(self, fb, code, label, status):
        fb.fill(0)
        label = label[0:_MAXCHARS]
        fb.text(label, (W - len(label) * 8) // 2, 0, 1)
        fb.hline(0, 10, W, 1)
        if code:
            code = code[0:_MAXCHARS]
            n = len(code)
            sx = min(4, W // (n * 8)) or 1
            sy = min(sx + 1, 4)
            self.big_text(fb, code, (W - n * 8 * sx) // 2, 14 + (40 - 8 * sy) // 2, sx, sy)
        else:
            # Unsynced mark: a crossed box instead of digits.
            fb.rect(40, 18, 48, 30, 1)
            fb.line(40, 18, 87, 47, 1)
            fb.line(40, 47, 87, 18, 1)
        status = status[0:_MAXCHARS]
        fb.text(status, (W - len(status) * 8) // 2, H - 8, 1)

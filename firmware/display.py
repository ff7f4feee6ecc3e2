# Display interface and the one renderer every panel shares.
#   show(code, label, status): code is "4919-27", or None while the clock is
#   unset (then no code is drawn: a wrong code is worse than none).
#   status is either a text line (str: the device name, or NOT_SYNCED) or an
#   int of ST_* bits, drawn as small marks bottom right. With a text status an
#   unset clock (code None) still gets its ST_CLOCK_UNSET mark.
# Drivers call render() into a framebuf w wide; pixels set to `ink` are drawn
# (1: black on PBM, lit on OLED; e-paper RAM uses 0 for black, so its renderer
# is made with ink=0). A driver short of heap keeps only a band of BAND rows
# and renders the screen band by band (render(..., top)): every band is drawn
# from the same layout and clipped by framebuf, so the bands put together are
# the whole-screen image bit for bit (the golden-image tests compare them).
import framebuf
from micropython import const

BAND = const(16)  # rows per band: 592 bytes on the 296-wide label instead of 4,736
_MAXCHARS = const(37)  # 296 // 8: the widest line the 8x8 font can draw on any panel
NOT_SYNCED = "not synced"

# Status bits for show(..., status).
ST_NO_GATEWAY = const(1)  # no gateway has collected the log for a while
ST_BATTERY_LOW = const(2)
ST_CLOCK_UNSET = const(4)
ST_CLOCK_STALE = const(8)  # set, but drifting (see clock.py)
_ST_LAST = const(8)  # the highest ST_* bit
_MARK_W = const(12)  # 10 px icon + 2 px gap


class Display:
    """What the device needs from any panel. This base draws nothing: it is the
    panel of safe mode, which skips the driver."""

    def show(self, code, label, status):
        pass


def glyph_cols(ch):
    """Font columns (first, count) kept when drawing big: the 8x8 font leaves
    column 0 blank, and a short hyphen lets the digits grow a step."""
    return (3, 2) if ch == "-" else (1, 6)


def code_scale(code, w):
    """The widest horizontal scale of the code that fits w (its gap between
    glyphs is scale // 2 + 1)."""
    cols = 0
    n = len(code)
    for i in range(n):  # by index: no iterator to allocate, every band calls this
        cols += glyph_cols(code[i])[1]
    sx = 1
    while True:
        s = sx + 1
        if s * cols + (s // 2 + 1) * (n - 1) > w - 2:
            break
        sx = s
    return sx


class Renderer:
    """Draws the label, a big code and a status line with marks. Keeps one
    scratch buffer for scaling the 8x8 font, and slices a string only when it
    is too long, so a render (one per band) allocates next to nothing."""

    def __init__(self, w, h, ink=1):
        self.w = w
        self.h = h
        self.ink = ink
        self.paper = 1 - ink
        self._sbuf = bytearray(_MAXCHARS * 8)  # (_MAXCHARS*8) x 8 px, 1 bit each
        self._scratch = framebuf.FrameBuffer(self._sbuf, _MAXCHARS * 8, 8, framebuf.MONO_HLSB)

    def big_text(self, fb, text, x0, y0, sx, sy, gap=0, bh=0x7FFF):
        # The font is only 8x8, so draw it small and blow each pixel up to a block.
        # y0 is relative to fb; font rows whose blocks miss rows 0..bh-1 are skipped.
        s = self._scratch
        s.fill(0)
        s.text(text, 0, 0, 1)
        ink = self.ink
        for y in range(8):
            yb = y0 + y * sy
            if yb >= bh or yb + sy <= 0:
                continue
            x = x0
            for i in range(len(text)):
                c0, nc = glyph_cols(text[i])
                for c in range(nc):
                    if s.pixel(i * 8 + c0 + c, y):
                        fb.fill_rect(x, yb, sx, sy, ink)
                    x += sx
                x += gap

    def text_width(self, text, sx, gap):
        n = 0
        for i in range(len(text)):
            n += glyph_cols(text[i])[1]
        return n * sx + gap * (len(text) - 1)

    def mark(self, fb, bit, x, y):
        """One 10x8 status mark at (x, y)."""
        k = self.ink
        if bit == ST_NO_GATEWAY:  # an antenna, struck through
            fb.line(x + 1, y, x + 4, y + 3, k)
            fb.line(x + 7, y, x + 4, y + 3, k)
            fb.vline(x + 4, y, 8, k)
            fb.line(x, y + 7, x + 9, y, k)
        elif bit == ST_BATTERY_LOW:  # a battery with one sliver of charge
            fb.rect(x, y + 1, 9, 6, k)
            fb.vline(x + 9, y + 3, 2, k)
            fb.vline(x + 2, y + 3, 2, k)
        elif bit == ST_CLOCK_UNSET:  # a clock face
            fb.ellipse(x + 4, y + 4, 4, 4, k)
            fb.vline(x + 4, y + 2, 3, k)
            fb.hline(x + 4, y + 4, 3, k)
        elif bit == ST_CLOCK_STALE:  # an hourglass
            fb.hline(x + 1, y, 8, k)
            fb.hline(x + 1, y + 7, 8, k)
            fb.line(x + 2, y + 1, x + 7, y + 6, k)
            fb.line(x + 7, y + 1, x + 2, y + 6, k)

    def render(self, fb, code, label, status, top=0, bh=0x7FFF):
        """Draw screen rows top..top+bh-1 into fb (at its rows 0..bh-1); the
        defaults draw the whole screen into a whole-screen fb."""
        w = self.w
        h = self.h
        k = self.ink
        fb.fill(self.paper)
        if isinstance(status, int):
            marks = status
            text = NOT_SYNCED if code is None else ""
        else:
            marks = 0 if code else ST_CLOCK_UNSET
            text = status
        # Label: doubled on a tall panel when it fits.
        if len(label) > w // 8:
            label = label[0:w // 8]
        ls = 2 if h >= 100 and len(label) * 16 <= w else 1
        if ls == 1:
            fb.text(label, (w - len(label) * 8) // 2, -top, k)
        elif top < 16:
            self._label2(fb, label, (w - len(label) * 16) // 2, -top)
        y = 8 * ls + 1
        fb.hline(0, y - top, w, k)
        y += 2
        area = h - 10 - y  # between the rule and the status band below
        y -= top  # from here on relative to the band
        if code:
            if len(code) > _MAXCHARS:
                code = code[0:_MAXCHARS]
            sx = code_scale(code, w)
            sy = min(area // 8, 2 * sx) or 1
            gap = sx // 2 + 1
            tw = self.text_width(code, sx, gap)
            self.big_text(fb, code, (w - tw) // 2, y + (area - 8 * sy) // 2, sx, sy, gap, bh)
        else:
            # Unsynced mark: a crossed box instead of digits.
            bxh = area - 6
            bw = bxh * 3 // 2
            x0 = (w - bw) // 2
            y0 = y + 3
            fb.rect(x0, y0, bw, bxh, k)
            fb.line(x0, y0, x0 + bw - 1, y0 + bxh - 1, k)
            fb.line(x0, y0 + bxh - 1, x0 + bw - 1, y0, k)
        # Status band: text, then the marks at the right edge.
        # (The ST_* bits are 1, 2, 4, 8, drawn in that order; a shifting bit
        # rather than a tuple to iterate: nothing to allocate.)
        nm = 0
        b = 1
        while b <= _ST_LAST:
            if marks & b:
                nm += 1
            b <<= 1
        room = (w - nm * _MARK_W) // 8
        if len(text) > room:
            text = text[0:room]
        x = (w - len(text) * 8) // 2 if not nm else 0
        y = h - 8 - top
        fb.text(text, x, y, k)
        x = w - nm * _MARK_W + 2
        b = 1
        while b <= _ST_LAST:
            if marks & b:
                self.mark(fb, b, x, y)
                x += _MARK_W
            b <<= 1

    def _label2(self, fb, label, x0, y0):
        # The label at twice the font size (keeps the font's own spacing).
        s = self._scratch
        s.fill(0)
        s.text(label, 0, 0, 1)
        k = self.ink
        for y in range(8):
            if y0 + 2 * y < -1:
                continue  # above the band
            for x in range(len(label) * 8):
                if s.pixel(x, y):
                    fb.fill_rect(x0 + 2 * x, y0 + 2 * y, 2, 2, k)

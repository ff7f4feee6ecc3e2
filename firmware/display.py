# Display interface and the one renderer every panel shares.
#   show(code, face, status, left=0): code is "4919-27", or None while the clock
#   is unset (then no code is drawn: a wrong code is worse than none).
#   face is the config (config.Config: label, host, art = (label art, QR art,
#   path of the blob)) or just a label string. The art is bitmaps the cloud rendered
#   at their size on this panel (protocol/devconfig.py, sized by
#   protocol/screen.py): the label top left, the QR at the right edge. They are
#   read row by row from the stored config blob at art_path and blitted, never
#   held in the heap.
#   status is either a text line (str: the device name, or NOT_SYNCED) or an
#   int of ST_* bits, drawn as small marks bottom right. With a text status an
#   unset clock (code None) still gets its ST_CLOCK_UNSET mark.
#   left: the window's steps still to run out of the panel's `steps` (a bar
#   under the code; 0: no bar).
# Drivers call render() into a framebuf w wide; pixels set to `ink` are drawn
# (1: black on PBM, lit on OLED; e-paper RAM uses 0 for black, so its renderer
# is made with ink=0). A driver short of heap keeps only a band of BAND rows
# and renders the screen band by band (render(..., top)): every band is drawn
# from the same layout and clipped by framebuf, so the bands put together are
# the whole-screen image bit for bit (the golden-image tests compare them).
import framebuf
from micropython import const

BAND = const(8)  # rows per band: 296 bytes on the 296-wide label instead of 4,736
_MAXCHARS = const(37)  # 296 // 8: the widest line the 8x8 font can draw on any panel
NOT_SYNCED = "not synced"

# Status bits for show(..., status).
ST_NO_GATEWAY = const(1)  # no gateway has collected the log for a while
ST_BATTERY_LOW = const(2)
ST_CLOCK_UNSET = const(4)
ST_CLOCK_STALE = const(8)  # set, but drifting (see clock.py)
_ST_LAST = const(8)  # the highest ST_* bit
_MARK_W = const(12)  # 10 px icon + 2 px gap
_BAR_H = const(5)  # the window bar under the code
_STATUS_H = const(10)  # the bottom band: protocol/screen.py STATUS_H, which sizes the QR
# The code's font: seven strokes per digit, drawn at any size with fill_rect
# (bits a..g: top, upper right, lower right, bottom, lower left, upper left,
# middle), so the digits fill the room they have instead of blowing up the 8x8
# font's pixels. Price labels use the same kind of face: it reads from afar.
_SEG = b"\x3f\x06\x5b\x4f\x66\x6d\x7d\x07\x7f\x6f"


class Display:
    """What the device needs from any panel. This base draws nothing: it is the
    panel of safe mode, which skips the driver."""

    steps = 0  # window bar steps (0: no bar); a driver sets the board's

    def show(self, code, face, status, left=0):
        pass


def digit(fb, ch, x, y, gw, gh, t, k):
    """One glyph of the code's font in a gw x gh box at (x, y), strokes t wide."""
    if ch == "-":
        fb.fill_rect(x, y + (gh - t) // 2, gw, t, k)
        return
    i = ord(ch) - 48
    if i < 0 or i > 9:
        return
    if i == 1:  # a centred stem with a flag reads better than two right strokes
        c = x + (gw - t) // 2
        fb.fill_rect(c, y, t, gh, k)
        fb.fill_rect(c - t, y, t, t, k)
        return
    g = _SEG[i]
    m = (gh - t) // 2  # top of the middle stroke
    r = x + gw - t
    if g & 1:
        fb.fill_rect(x, y, gw, t, k)
    if g & 2:
        fb.fill_rect(r, y, t, m + t, k)
    if g & 4:
        fb.fill_rect(r, y + m, t, gh - m, k)
    if g & 8:
        fb.fill_rect(x, y + gh - t, gw, t, k)
    if g & 16:
        fb.fill_rect(x, y + m, t, gh - m, k)
    if g & 32:
        fb.fill_rect(x, y, t, m + t, k)
    if g & 64:
        fb.fill_rect(x, y + m, gw, t, k)


class Renderer:
    """Draws the label (art, or text in the 8x8 font), the code in its stroke
    font, the window bar, the QR and a status band with the host and marks.
    Keeps one row buffer for reading art from flash, and slices a string only
    when it is too long, so a render (one per band) allocates next to nothing."""

    def __init__(self, w, h, ink=1):
        self.w = w
        self.h = h
        self.ink = ink
        self.paper = 1 - ink
        self._row = bytearray((w + 7) // 8)  # one art row, as read from flash
        self._rowfb = framebuf.FrameBuffer(self._row, w, 1, framebuf.MONO_HLSB)

    def _art(self, f, fb, a, x0, y0, top, bh):
        """Rows of art item a = (kind, w, h, offset) that meet this band, from file
        f (opened on first need, returned), blitted at (x0, y0) on the screen."""
        if a is None:
            return f
        stride = (a[1] + 7) // 8
        row = self._row
        n = min(stride, len(row))
        for i in range(n, len(row)):  # past the art: paper, which blit skips
            row[i] = 0xFF * self.paper
        for r in range(a[2]):
            y = y0 + r - top
            if y < 0 or y >= bh:
                continue
            if f is None:
                f = open(self._path, "rb")
            f.seek(a[3] + r * stride)
            f.readinto(memoryview(row)[0:n])
            if self.ink == 0:  # art bits are 1 = ink: this panel's ink is 0
                for i in range(n):
                    row[i] ^= 0xFF
            fb.blit(self._rowfb, x0, y, self.paper)  # paper pixels are not drawn
        return f

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

    def render(self, fb, code, face, status, top=0, bh=0x7FFF, left=0, steps=0):
        """Draw screen rows top..top+bh-1 into fb (at its rows 0..bh-1); the
        defaults draw the whole screen into a whole-screen fb."""
        w = self.w
        h = self.h
        k = self.ink
        fb.fill(self.paper)
        if isinstance(face, str):
            label, host, la, qa = face, "", None, None
        else:
            label, host, la, qa = face.label, face.host, None, None
            if face.art is not None:
                la, qa, self._path = face.art
        cw = w  # the code's column: left of the QR
        f = None
        try:
            if qa is not None:
                cw = w - qa[1]
                f = self._art(f, fb, qa, cw, (h - _STATUS_H - qa[2]) // 2, top, bh)
            if la is not None:
                lh = la[2]
                f = self._art(f, fb, la, (cw - la[1]) // 2, 0, top, bh)
            else:
                lh = self._text_label(fb, label, cw, top)
        finally:
            if f is not None:
                f.close()
        y = lh + 1
        fb.hline(0, y - top, cw, k)
        y += 2
        bar = _BAR_H + 2 if steps and code else 0
        area = h - _STATUS_H - y - bar  # between the rule and the bar
        y -= top  # from here on relative to the band
        if code:
            self._code(fb, code, cw, y, area)
            if bar:
                bw = cw - 8
                fb.rect(4, y + area, bw, _BAR_H, k)
                fb.fill_rect(4, y + area, bw * left // steps, _BAR_H, k)
        else:
            # Unsynced mark: a crossed box instead of digits.
            bxh = area - 6
            bw = bxh * 3 // 2
            x0 = (cw - bw) // 2
            y0 = y + 3
            fb.rect(x0, y0, bw, bxh, k)
            fb.line(x0, y0, x0 + bw - 1, y0 + bxh - 1, k)
            fb.line(x0, y0 + bxh - 1, x0 + bw - 1, y0, k)
        self._status(fb, code, status, host, top)

    def _text_label(self, fb, label, cw, top):
        """The label in the 8x8 font (no art: config.json alone): its height."""
        if len(label) > cw // 8:
            label = label[0:cw // 8]
        fb.text(label, (cw - len(label) * 8) // 2, -top, self.ink)
        return 8

    def _code(self, fb, code, cw, y, area):
        if len(code) > _MAXCHARS:
            code = code[0:_MAXCHARS]
        n = len(code)
        nh = 0
        for i in range(n):  # by index: no iterator to allocate, every band does this
            if code[i] == "-":
                nh += 1
        # n - nh digits of gw, nh hyphens of 2/3 gw, n - 1 gaps of gw/4
        gw = min((cw - 4) * 12 // (12 * (n - nh) + 8 * nh + 3 * (n - 1)), area * 3 // 5)
        hw = gw * 2 // 3
        gap = gw // 4 or 1
        t = max(2, gw // 5 + 1)
        gh = min(area - 4, gw * 5 // 2)
        tw = 0
        for i in range(n):
            tw += hw if code[i] == "-" else gw
        x = (cw - tw - gap * (n - 1)) // 2
        y += (area - gh) // 2
        for i in range(n):
            c = code[i]
            cw_i = hw if c == "-" else gw
            digit(fb, c, x, y, cw_i, gh, t, self.ink)
            x += cw_i + gap

    def _status(self, fb, code, status, host, top):
        # Status band: text (the host, "not synced", or a text status), then the
        # marks at the right edge. (The ST_* bits are 1, 2, 4, 8, drawn in that
        # order; a shifting bit rather than a tuple to iterate: nothing to allocate.)
        w = self.w
        if isinstance(status, int):
            marks = status
            text = NOT_SYNCED if code is None else host
        else:
            marks = 0 if code else ST_CLOCK_UNSET
            text = status
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
        y = self.h - 8 - top
        fb.text(text, x, y, self.ink)
        x = w - nm * _MARK_W + 2
        b = 1
        while b <= _ST_LAST:
            if marks & b:
                self.mark(fb, b, x, y)
                x += _MARK_W
            b <<= 1

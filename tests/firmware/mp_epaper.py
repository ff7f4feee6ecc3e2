# SSD1680 driver on fake pins and SPI (MicroPython): the refresh schedule, the
# busy timeout and the RAM layout, checked by a small model of the controller's
# RAM addressing that only knows what the datasheet says the commands do.
import framebuf

import display
import display_ssd1680 as E
from display import ST_BATTERY_LOW, ST_CLOCK_UNSET, Renderer

# SSD1680 commands and values, from the datasheet (the driver's are private consts).
DATA_ENTRY = 0x11
RAM_X = 0x44
RAM_Y = 0x45
UPDATE_CTRL2 = 0x22
X_COUNTER = 0x4E
Y_COUNTER = 0x4F
WRITE_BW = 0x24
WRITE_OLD = 0x26
FULL = 0xF7  # UPDATE_CTRL2 value: display mode 1
PARTIAL = 0xFF  # display mode 2
ETIMEDOUT = 110


class Pin:
    def __init__(self, v=0):
        self.v = v
        self.reads = 0

    def __call__(self, v=None):
        if v is None:
            self.reads += 1
            return self.v
        self.v = v


class Spi:
    """Records (command, data) pairs the way the panel sees them (DC low = command)."""

    def __init__(self, dc):
        self.dc = dc
        self.log = []

    def write(self, b):
        if self.dc.v == 0:
            self.log.append([b[0], b""])
        else:
            self.log[-1][1] = self.log[-1][1] + bytes(b)

    def updates(self):
        return [d[0] for c, d in self.log if c == UPDATE_CTRL2]


def panel(**kw):
    dc = Pin()
    spi = Spi(dc)
    d = E.Ssd1680Display(spi, Pin(1), dc, Pin(1), Pin(0), **kw)
    return d, spi


def whole(code, label, status):
    """The screen rendered at once into a whole 296x128 VLSB buffer: what the
    driver's bands must add up to."""
    buf = bytearray(296 * 128 // 8)
    Renderer(296, 128, ink=0).render(framebuf.FrameBuffer(buf, 296, 128, framebuf.MONO_VLSB),
                                     code, label, status)
    return bytes(buf)


def test_full_first_then_partials_then_full_every_n():
    d, spi = panel(full_every=3)
    got = []
    for i in range(9):
        spi.log = []
        d.show(f"4919-{i:02d}", "Oat milk 1L", "mc-0708")
        got += spi.updates()
    assert got == [FULL, PARTIAL, PARTIAL, PARTIAL] * 2 + [FULL], got


def test_partial_keeps_the_old_image_for_the_compare():
    d, spi = panel()
    d.show("4919-01", "L", "x")
    first = [data for c, data in spi.log if c in (WRITE_BW, WRITE_OLD)]
    assert first == [whole("4919-01", "L", "x")] * 2  # full: both RAMs get the image
    spi.log = []
    d.show("4919-02", "L", "x")
    cmds = [c for c, _ in spi.log]
    assert WRITE_BW in cmds and WRITE_OLD not in cmds  # partial: old RAM untouched
    spi.log = []
    d.show("4919-03", "L", "x")
    old = [data for c, data in spi.log if c == WRITE_OLD]
    new = [data for c, data in spi.log if c == WRITE_BW]
    assert old == [whole("4919-02", "L", "x")]  # synced to the 2nd image, re-rendered
    assert new == [whole("4919-03", "L", "x")]
    assert len(d._buf) == 296 * display.BAND // 8 and display.BAND < 128  # a band, not the screen


def test_full_refresh_every_hour():
    p = E.RefreshPolicy(every=1000, max_ms=3600000)
    assert p.full(0)
    p.done(True, 0)
    assert not p.full(1000)
    p.done(False, 1000)
    assert not p.full(3599999)
    assert p.full(3600000)
    p.done(True, 3600000)
    assert p.partials == 0 and not p.full(3600001)


def test_busy_panel_times_out():
    d, spi = panel(busy_ms=30)
    d._busy.v = 1  # stuck busy
    try:
        d.show("4919-01", "L", "x")
    except OSError as e:
        assert e.errno == ETIMEDOUT
    else:
        raise AssertionError("no timeout")
    assert d._busy.reads > 2


def test_ram_layout_matches_the_landscape_framebuf():
    d, spi = panel()
    d.show("4919-27", "Oat milk 1L", ST_BATTERY_LOW | ST_CLOCK_UNSET)
    # The controller's RAM: 16 source bytes x 296 gates, filled per the commands.
    ram = bytearray(16 * 296)
    mode = xs = xe = ys = ye = x = y = None
    for c, data in spi.log:
        if c == DATA_ENTRY:
            mode = data[0]
        elif c == RAM_X:
            xs, xe = data[0], data[1]
        elif c == RAM_Y:
            ys, ye = data[0] | data[1] << 8, data[2] | data[3] << 8
        elif c == X_COUNTER:
            x = data[0]
        elif c == Y_COUNTER:
            y = data[0] | data[1] << 8
        elif c == WRITE_BW:
            assert mode == 0x06  # AM=1: Y first; Y increments; X decrements
            for b in data:
                ram[x * 296 + y] = b
                y += 1
                if y > ye:
                    y = ys
                    x -= 1
                    if x < xe:
                        x = xs
    # Source s (MSB first in each byte) at gate g must show landscape pixel (g, 127 - s).
    img = bytearray(whole("4919-27", "Oat milk 1L", ST_BATTERY_LOW | ST_CLOCK_UNSET))
    fb = framebuf.FrameBuffer(img, 296, 128, framebuf.MONO_VLSB)
    ink = 0
    for g in range(296):
        for s in range(128):
            bit = (ram[(s >> 3) * 296 + g] >> (7 - (s & 7))) & 1
            assert bit == fb.pixel(g, 127 - s), (g, s)
            ink += bit == 0
    assert 2000 < ink < 20000, ink  # black digits on white paper

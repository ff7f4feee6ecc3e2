# SSD1306 128x64 OLED on I2C (the poster kiosk panel). Written from the
# datasheet's init sequence; needs machine.I2C, so it only runs on the device.
import framebuf
from micropython import const

from display import Display, Renderer

_W = const(128)
_H = const(64)
_ADDR = const(0x3C)
_INIT = (
    0xAE,  # display off while configuring
    0x20, 0x00,  # horizontal addressing: one burst writes the whole buffer
    0x40,  # start line 0
    0xA1,  # column 127 -> SEG0 (panel mounted the usual way up)
    0xA8, _H - 1,  # multiplex ratio
    0xC8,  # COM scan from the bottom
    0xD3, 0x00,  # no vertical offset
    0xDA, 0x12,  # alternative COM pins, needed for 64 rows
    0xD5, 0x80,  # clock divide / oscillator
    0xD9, 0xF1,  # pre-charge for the internal charge pump
    0xDB, 0x30,  # VCOMH deselect level
    0x81, 0xCF,  # contrast
    0xA4,  # follow RAM
    0xA6,  # not inverted
    0x8D, 0x14,  # charge pump on
    0xAF,  # display on
)


class Ssd1306Display(Display):
    def __init__(self, i2c, addr=_ADDR, steps=0):
        self._i2c = i2c
        self._addr = addr
        self._cmdbuf = bytearray(2)
        self._cmdbuf[0] = 0x80  # control byte: one command follows
        self._buf = bytearray(_W * _H // 8)
        self._fb = framebuf.FrameBuffer(self._buf, _W, _H, framebuf.MONO_VLSB)
        self._r = Renderer(_W, _H)
        self.steps = steps
        for c in _INIT:
            self._cmd(c)

    def _cmd(self, c):
        self._cmdbuf[1] = c
        self._i2c.writeto(self._addr, self._cmdbuf)

    def show(self, code, face, status, left=0):
        self._r.render(self._fb, code, face, status, 0, 0x7FFF, left, self.steps)
        for c in (0x21, 0, _W - 1, 0x22, 0, _H // 8 - 1):
            self._cmd(c)
        self._i2c.writevto(self._addr, (b"\x40", self._buf))  # 0x40: data follows

"""The art of a display's sealed config (protocol/devconfig.py): the campaign's label, in zh-CN or
en, and the shopper page's QR, rendered here into packed 1-bit bitmaps for the device's panel, as
OpenEPaperLink's access point renders images for its tags. The device only blits them.

Depends on no other cloud module: Pillow with the Debian CJK font (fonts-wqy-microhei) and segno.
Sizes follow protocol/screen.py, the rule the firmware places them by.
"""

from __future__ import annotations

from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

from protocol import devconfig, screen

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
Art = tuple[int, int, int, bytes]  # (kind, w, h, bits): a devconfig.Settings art item


class ArtError(ValueError):
    """The art cannot be made (no font, a label that does not fit at a legible size)."""


def pack(img: Image.Image) -> bytes:
    """A 1-bit image as devconfig bits: rows of ceil(w/8) bytes, MSB first, 1 = ink."""
    # PIL's mode "1" packs rows MSB first with 1 = white; ink is black, so invert,
    # keeping each row's padding bits (past w) clear.
    w = img.width
    stride = (w + 7) // 8
    last = (0xFF << (-w % 8)) & 0xFF
    raw = bytearray(b ^ 0xFF for b in img.convert("1").tobytes())
    for i in range(stride - 1, len(raw), stride):
        raw[i] &= last
    return bytes(raw)


def _font(px: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(str(FONT), px)
    except OSError as e:
        raise ArtError(f"no font at {FONT} (apt-get install fonts-wqy-microhei)") from e


def render_text(text: str, width: int, height: int, min_px: int = 10) -> bytes:
    """`text` in the CJK font, centred in a width x height box, at the largest size that fits
    (at least min_px): packed 1-bit bits, 1 = ink. No anti-aliasing: a hard threshold."""
    text = " ".join(text.split())
    if not text:
        return bytes(devconfig.art_len(width, height))
    for px in range(height, min_px - 1, -1):
        font = _font(px)
        left, top, right, bottom = font.getbbox(text)
        if right - left <= width and bottom - top <= height:
            img = Image.new("L", (width, height), 255)
            draw = ImageDraw.Draw(img)
            draw.fontmode = "1"  # no grey edges to threshold
            x = (width - (right - left)) // 2 - left
            y = (height - (bottom - top)) // 2 - top
            draw.text((x, y), text, font=font, fill=0)
            return pack(img.point(lambda v: 255 if v > 127 else 0))
    raise ArtError(f"label {text!r} does not fit {width}x{height} px at {min_px} px or more")


def qr_modules(url: str) -> list[list[bool]]:
    """The QR of url (error correction M) as rows of modules, True = dark."""
    return [[bool(v) for v in r] for r in segno.make_qr(url, error="m", boost_error=False).matrix]


def render_qr(url: str, scale: int) -> tuple[int, bytes]:
    """The QR of url at scale px per module, with a quiet zone of screen.QR_QUIET modules:
    (side in px, bits)."""
    rows = qr_modules(url)
    q = screen.QR_QUIET
    side = (len(rows) + 2 * q) * scale
    img = Image.new("1", (side, side), 1)
    draw = ImageDraw.Draw(img)
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark:
                x0, y0 = (x + q) * scale, (y + q) * scale
                draw.rectangle((x0, y0, x0 + scale - 1, y0 + scale - 1), fill=0)
    return side, pack(img)


def device_art(label: str, url: str | None, panel_w: int, panel_h: int) -> list[Art]:
    """The art items for a devconfig.Settings(..., host, art), at their size on a panel_w x
    panel_h panel: the QR when the panel has room for it (protocol/screen.py), and the label in
    the box that leaves."""
    art: list[Art] = []
    n = 0
    if url:
        n = len(qr_modules(url))
        s = screen.qr_scale(panel_w, panel_h, n)
        if s:
            side, bits = render_qr(url, s)
            art.append((devconfig.ART_QR, side, side, bits))
        else:
            n = 0
    w, h = screen.label_w(panel_w, panel_h, n), screen.label_h(panel_h)
    if label.strip():
        art.insert(0, (devconfig.ART_LABEL, w, h, render_text(label, w, h)))
    return art

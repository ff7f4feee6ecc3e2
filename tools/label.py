"""`mcode tools label`: a printable sheet for a mounted device (PNG at 300 dpi, or PDF): device
name, location, base code, a QR of the shopper page (segno) and the install date, in zh or en."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

from tools.errors import BAD_INPUT, ToolError
from tools.i18n import _

DPI = 300
SIZE_MM = (100, 62)  # a common thermal label
FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # Debian fonts-wqy-microhei
         "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


@dataclass(frozen=True)
class LabelData:
    device: str
    location: str
    base: str
    url: str
    date: str


def _px(mm: float) -> int:
    return round(mm / 25.4 * DPI)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for f in FONTS:
        if Path(f).exists():
            return ImageFont.truetype(f, size)
    return ImageFont.load_default(size)  # no CJK: Latin text only


def render(d: LabelData) -> Image.Image:
    w, h = _px(SIZE_MM[0]), _px(SIZE_MM[1])
    img = Image.new("1", (w, h), 1)
    draw = ImageDraw.Draw(img)
    qr = segno.make(d.url, error="m")
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=1, border=2)
    q = Image.open(buf).convert("1")
    side = h - _px(8)
    q = q.resize((side, side), Image.Resampling.NEAREST)
    img.paste(q, (w - side - _px(3), _px(4)))
    x, y = _px(4), _px(4)
    small, big = _font(_px(3.6)), _font(_px(11))
    draw.text((x, y), _("Code"), font=small, fill=0)
    draw.text((x, y + _px(4.5)), d.base, font=big, fill=0)
    y += _px(19)
    for k, v in ((_("Device"), d.device), (_("Location"), d.location), (_("Installed"), d.date)):
        draw.text((x, y), f"{k}: {v}", font=small, fill=0)
        y += _px(5.5)
    draw.text((x, h - _px(8)), d.url, font=_font(_px(2.6)), fill=0)
    return img


def save(d: LabelData, out: Path) -> Path:
    img = render(d)
    if out.suffix.lower() == ".pdf":
        img.save(out, "PDF", resolution=DPI)
    elif out.suffix.lower() == ".png":
        img.save(out, "PNG", dpi=(DPI, DPI))
    else:
        raise ToolError(_("Label file must end in .png or .pdf: {path}").format(path=out), BAD_INPUT)
    return out

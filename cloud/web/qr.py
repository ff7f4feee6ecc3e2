"""QR codes as inline SVG, made on the server with segno (no script, no request elsewhere)."""

from __future__ import annotations

import segno
from markupsafe import Markup


def svg(data: str, label: str, scale: int = 8) -> Markup:
    """`data` as a QR code (never a Micro QR: phones' cameras read only full QR codes), an inline
    <svg> that scales to its box (viewBox), named for screen readers by `label`."""
    qr = segno.make(data, error="m", micro=False)
    out = qr.svg_inline(scale=scale, border=4, omitsize=True, svgclass="qr", lineclass="qrline",
                        title=label, dark="#000", light="#fff")
    return Markup(out.replace("<svg ", '<svg role="img" ', 1))

"""Charts drawn on the server as SVG: no script, no CDN, and nothing inline that a CSP refuses
(presentation attributes, not style attributes)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

COLOURS = {"entries": "#0b5cad", "orders": "#c0392b"}


def bars(
    points: Sequence[dict[str, int]],
    keys: Sequence[str],
    labels: Sequence[str],
    title: str,
    width: int = 640,
    height: int = 180,
) -> Markup:
    """Grouped bars, one group per point, scaled to the largest value; `labels` name each group
    under the axis (every few, so they do not overlap)."""
    pad_l, pad_b, pad_t = 34, 22, 8
    inner_w, inner_h = width - pad_l - 4, height - pad_b - pad_t
    top = max([1] + [p[k] for p in points for k in keys])
    n = max(1, len(points))
    group = inner_w / n
    bar = max(1.0, group * 0.8 / len(keys))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'class="chart" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{pad_l}" y1="{pad_t + inner_h}" x2="{width - 4}" y2="{pad_t + inner_h}" stroke="#999"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end" font-size="10" fill="#555">{top}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + inner_h}" text-anchor="end" font-size="10" fill="#555">0</text>',
    ]
    every = max(1, n // 7)
    for i, p in enumerate(points):
        x0 = pad_l + i * group + group * 0.1
        for j, k in enumerate(keys):
            h = inner_h * p[k] / top
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{pad_t + inner_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{COLOURS.get(k, "#555")}"><title>{escape(k)}: {p[k]}</title></rect>'
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x0:.1f}" y="{height - 6}" font-size="10" fill="#555">{escape(labels[i])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))

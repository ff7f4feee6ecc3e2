"""Pages rendered from templates/: each function takes the page's data and returns HTML.
Labels come in zh-CN and en; the template shows both, each marked with its `lang`."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

# (zh-CN, en) for every label on the merchant page
MERCHANT_LABELS = {
    "title": ("商户数据", "Merchant data"),
    "device": ("设备", "Device"),
    "label": ("标签", "Label"),
    "location": ("M店 / 位置", "Location"),
    "code": ("基础码 / 槽位", "Base code / slot"),
    "scans": ("扫码（触碰）", "Scans (taps)"),
    "events": ("事件", "Events"),
    "gaps": ("缺失", "Gaps"),
    "entries": ("进店", "Entries"),
    "total": ("合计", "Total"),
    "orders": ("订单", "Orders"),
    "paid": ("付给酬客（不含已退款订单）", "Paid to sharers (refunds excluded)"),
    "none": ("尚无设备", "No devices yet"),
    "gaps_note": ("缺失：设备日志序号中未收到的记录数。",
                  "Gaps: records missing from a device's log sequence."),
}


@cache
def environment() -> Environment:
    """The one Jinja2 environment (made on first use, not at import): autoescaped HTML."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                       trim_blocks=True, lstrip_blocks=True)


def merchant_page(merchant_name: str, stats: dict[str, Any]) -> str:
    """The merchant page (商户页) from `stats.merchant_stats`."""
    return environment().get_template("merchant.html").render(
        L=MERCHANT_LABELS, merchant_name=merchant_name, stats=stats, totals=stats["totals"])

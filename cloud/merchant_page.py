"""The merchant page (商户页): plain HTML, labels in zh-CN and en, from `stats.merchant_stats`."""

from __future__ import annotations

from html import escape
from typing import Any

# (zh-CN, en) for every label on the page
L = {
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


def _t(key: str) -> str:
    zh, en = L[key]
    return f'<span lang="zh-CN">{escape(zh)}</span> <span lang="en" class="en">{escape(en)}</span>'


def render(merchant_name: str, stats: dict[str, Any]) -> str:
    tot = stats["totals"]
    head = "".join(f"<th>{_t(k)}</th>" for k in
                   ("device", "label", "location", "code", "scans", "events", "gaps", "entries"))
    body = []
    for d in stats["devices"]:
        body.append(
            f'<tr data-device="{escape(d["device_id"])}"><td><code>{escape(d["device_id"])}</code></td>'
            f'<td>{escape(d["label"])}</td><td>{escape(d["location"])}</td>'
            f'<td>{escape(d["base_code"])} / {d["slot"]}</td>'
            f'<td class="scans">{d["scans"]}</td><td class="events">{d["events"]}</td>'
            f'<td class="gaps">{d["gaps"]}</td><td class="entries">{d["entries"]}</td></tr>')
    if not body:
        body.append(f'<tr><td colspan="8">{_t("none")}</td></tr>')
    foot = (f'<tr><th colspan="4">{_t("total")}</th><td id="total-scans">{tot["scans"]}</td>'
            f'<td id="total-events">{tot["events"]}</td><td id="total-gaps">{tot["gaps"]}</td>'
            f'<td id="total-entries">{tot["entries"]}</td></tr>')
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(L["title"][0])} · {escape(L["title"][1])} · {escape(merchant_name)}</title>
<style>
body {{ font-family: system-ui, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC",
       "WenQuanYi Micro Hei", sans-serif; margin: 1.5rem; color: #222; }}
h1 {{ font-size: 1.6rem; margin: 0 0 .8rem; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .6rem; }}
thead th {{ background: #f4f4f4; vertical-align: bottom; }}
td.scans, td.events, td.gaps, td.entries, tfoot td {{ text-align: right; }}
tfoot th {{ text-align: left; }} tfoot th, tfoot td {{ background: #f4f4f4; font-weight: bold; }}
.en {{ color: #666; font-size: .9em; }} thead .en {{ display: block; }}
p.note {{ color: #444; font-size: .9em; }}
</style></head><body>
<h1>{_t("title")} · {escape(merchant_name)}</h1>
<p>{_t("orders")}: <b id="orders">{tot["orders"]}</b> · {_t("paid")}:
<b id="paid">{tot["pool_paid_minor"]}</b></p>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody><tfoot>{foot}</tfoot></table>
<p class="note">{_t("gaps_note")}</p>
</body></html>
"""

"""The dashboard at the top of the merchant page: headlines against the previous period, a chart,
funnels, sharers and device health, zh-CN and en. Renders the data cloud/services/dashboard.py
computes; knows nothing of requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from markupsafe import Markup

from cloud.web.charts import bars
from cloud.web.pages import environment
from cloud.web.sales_pages import money

DASH_LABELS = {
    "period": ("时段", "Period"),
    "today": ("今天", "Today"),
    "7d": ("7 天", "7 days"),
    "30d": ("30 天", "30 days"),
    "custom": ("自定义", "Custom"),
    "from": ("开始", "From"),
    "to": ("结束（含）", "To (inclusive)"),
    "show": ("查看", "Show"),
    "vs": ("对比上一时段", "vs the previous period"),
    "taps": ("触碰", "Taps"),
    "entries": ("进店", "Entries"),
    "shares": ("分享", "Shares"),
    "orders": ("订单", "Orders"),
    "revenue_minor": ("销售额", "Revenue"),
    "paid_minor": ("付给酬客", "Paid to sharers"),
    "cost_per_order_minor": ("每单成本", "Cost per order"),
    "chart": ("每段进店与订单", "Entries and orders over time"),
    "funnel_display": (
        "各显示屏漏斗（按分享链起点）",
        "Funnel per display (by the display a chain started at)",
    ),
    "funnel_campaign": ("各活动漏斗", "Funnel per campaign"),
    "display": ("显示屏", "Display"),
    "campaign": ("活动", "Campaign"),
    "no_display": ("无显示屏（仅基础码）", "No display (base code only)"),
    "sharers": ("酬客排行", "Top sharers"),
    "code": ("分享码", "Share code"),
    "earned": ("收益", "Earned"),
    "depth": ("分享链深度", "Chain depth"),
    "count": ("进店数", "Entries"),
    "health": ("设备状态", "Device health"),
    "last_seen": ("最后收到", "Last heard of"),
    "silent": ("静默告警", "Silent alarm"),
    "never": ("从未", "never"),
    "ok": ("正常", "ok"),
    "alarm": ("已静默", "silent"),
    "events": ("事件", "Events"),
    "board": ("型号", "Board"),
    "battery": ("电量", "Battery"),
    "battery_low": ("电量低", "low"),
    "battery_ok": ("正常", "ok"),
    "firmware": ("固件", "Firmware"),
    "gateway": ("网关", "Gateway"),
    "gw_online": ("在线", "online"),
    "gw_offline": ("离线", "offline"),
    "gw_unknown": ("状态无效", "status refused"),
    "unknown": ("未知", "unknown"),
    "spool_warn": ("缓存将满", "spool filling"),
    "spool_full": ("缓存已满", "spool full"),
    "none": ("此时段没有数据", "Nothing in this period"),
    "bad_period": ("时段无效，已显示最近 7 天。", "That period is not valid: showing the last 7 days."),
    "rows_note": (
        "各行之和等于合计；基础码进店没有显示屏，单列一行。",
        "Rows add up to the totals; base-code entries have no display and get a row of their own.",
    ),
}


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%m-%d")


def _hour(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%H:00")


def _when(ms: int | None) -> str:
    return "" if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def dashboard_section(
    dash: dict[str, Any],
    period_name: str,
    currency: str = "CNY",
    bad_period: bool = False,
    custom: tuple[str, str] = ("", ""),
) -> Markup:
    p = dash["period"]
    label = _hour if p["bucket_ms"] < 24 * 3600 * 1000 else _day
    chart = bars(
        dash["series"],
        ("entries", "orders"),
        [label(x["start_ms"]) for x in dash["series"]],
        f"{DASH_LABELS['chart'][0]} · {DASH_LABELS['chart'][1]}",
    )

    def fmt(key: str, v: int | None) -> str:
        if v is None:
            return "–"
        return money(v, currency) if key.endswith("_minor") else f"{v:,}"

    return Markup(
        environment()
        .get_template("dashboard.html")
        .render(
            L=DASH_LABELS,
            d=dash,
            chart=chart,
            fmt=fmt,
            period_name=period_name,
            bad_period=bad_period,
            custom=custom,
            when=_when,
            money=lambda v: money(v, currency),
            period_text=f"{_when(p['start_ms'])} – {_when(p['end_ms'])}",
        )
    )

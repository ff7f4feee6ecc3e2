"""The console's campaign pages (issue 14 part 3): the list with the rent search, and one campaign's
draft (landing text beside the shopper's page as it would look, rule and money, publish, history).
Labels in zh-CN and en side by side, as the rest of the console; money through sales_pages.money.
The landing preview itself is shopper_pages.landing_page: the shopper's own template."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cloud.web.pages import environment
from cloud.web.sales_pages import money

CAMPAIGN_LABELS = {
    "title": ("活动", "Campaigns"),
    "back": ("返回数据页", "Back to the dashboard"),
    "all": ("全部活动", "All campaigns"),
    "base_code": ("基础码", "Base code"),
    "label": ("标题", "Title"),
    "status": ("状态", "Status"),
    "version": ("已发布版本", "Published version"),
    "draft": ("草稿", "Draft"),
    "draft_pending": ("有未发布的修改", "unpublished changes"),
    "none": ("尚无活动：先在下面租一个基础码。", "No campaigns yet: rent a base code below."),
    "running": ("进行中", "running"),
    "not_started": ("未开始", "not started"),
    "ended": ("已结束", "ended"),
    "released": ("已释放", "released"),
    "rent_title": ("租用基础码", "Rent a base code"),
    "search_hint": (
        "输入想要的基础码，或用 ? 代表任意数字（例如 49??）；也可只填位数。",
        "Type the base code you want, or ? for any digit (e.g. 49??); or just a length.",
    ),
    "wanted": ("基础码或模式", "Base code or pattern"),
    "length": ("位数", "Length"),
    "search": ("查找空闲基础码", "Find free base codes"),
    "free": ("空闲", "free"),
    "taken": ("已被租用", "taken"),
    "overlaps": (
        "与已租用的基础码前缀重叠，顾客输入时请带上横杠：",
        "Shares a prefix with rented codes; shoppers should type the dash:",
    ),
    "no_free": ("此模式下没有空闲的基础码。", "No free base code matches."),
    "label_zh": ("中文标题", "Title in Chinese"),
    "label_en": ("英文标题", "Title in English"),
    "rent": ("租用", "Rent"),
    "edit": ("编辑", "Edit"),
    "landing": ("落地页", "Landing page"),
    "landing_zh": ("中文正文（空行分段）", "Text in Chinese (blank line between paragraphs)"),
    "landing_en": ("英文正文（空行分段）", "Text in English (blank line between paragraphs)"),
    "image_url": ("图片网址（https）", "Image URL (https)"),
    "target_url": ("网上商店网址（https）", "Online shop URL (https)"),
    "preview": ("预览", "Preview"),
    "preview_lang": ("预览语言", "Preview language"),
    "preview_title": ("顾客看到的页面（草稿）", "What a shopper sees (draft)"),
    "money": ("酬金规则与预算", "Reward rule and budget"),
    "rule": ("酬众规则", "Reward rule"),
    "red-balloon": ("红气球（每层减半）", "Red balloon (halves each level)"),
    "fixed-levels": ("固定层级比例", "Fixed levels"),
    "geometric": ("几何递减", "Geometric"),
    "levels_bp": (
        "各层比例（基点，逗号分隔；1000 = 10%）",
        "Levels (basis points, comma-separated; 1000 = 10%)",
    ),
    "a": ("首层比例 a", "First share a"),
    "b": ("递减系数 b", "Ratio b"),
    "pool_mode": ("酬金", "Pool"),
    "fixed": ("每单固定金额", "A fixed amount per order"),
    "share": ("销售额的百分比", "A share of the sale"),
    "pool": ("每单酬金（元）", "Pool per order (yuan)"),
    "pool_pct": ("销售额的百分比（%）", "Share of the sale (%)"),
    "pool_cap": ("每单上限（元，可空）", "Cap per order (yuan, optional)"),
    "budget": ("总预算（元，空表示不设上限）", "Budget (yuan, empty for no cap)"),
    "window_days": ("归因窗口（天）", "Attribution window (days)"),
    "hold_days": ("冻结期（天）", "Hold before payout (days)"),
    "starts": ("开始日期（UTC）", "Starts (UTC date)"),
    "ends": ("结束日期（含，UTC）", "Ends (UTC date, inclusive)"),
    "save": ("保存草稿", "Save the draft"),
    "saved": ("草稿已保存", "Draft saved"),
    "publish": ("发布草稿", "Publish the draft"),
    "published": ("已发布", "Published"),
    "discard": ("放弃草稿", "Discard the draft"),
    "changes": ("草稿相对线上的修改", "What the draft changes"),
    "no_changes": ("草稿与线上一致。", "The draft is what is live."),
    "rule_preview": ("用最近的分享链预览规则", "The rule on recent chains"),
    "rule_preview_note": (
        "按草稿的规则与酬金，假设每条链是下一笔订单；没有订单的链按平均订单额 {amount} 计。",
        "Each chain as if it were the next order under the draft's rule and pool; "
        "a chain without an order is priced at the mean order, {amount}.",
    ),
    "chain": ("分享链", "Chain"),
    "order": ("订单", "Order"),
    "entry": ("进店", "Entry"),
    "amount": ("销售额", "Sale"),
    "depth": ("层数", "Depth"),
    "payouts": ("各层酬金（离顾客最近者在前）", "Per level (nearest the shopper first)"),
    "remainder": ("余额", "Remainder"),
    "was_paid": ("当时付给酬客", "Paid to sharers then"),
    "under_draft": ("按草稿", "under the draft"),
    "charity": ("公益", "charity"),
    "merchant": ("商户", "merchant"),
    "no_chains": ("此活动还没有分享链。", "This campaign has no share chains yet."),
    "budget_left": ("剩余预算", "Budget left"),
    "no_cap": ("不设上限", "no cap"),
    "history": ("版本历史", "Version history"),
    "when": ("时间", "When"),
    "by": ("操作人", "By"),
    "what": ("修改", "What changed"),
    "first": ("首个版本", "first version"),
    "no_history": ("尚未发布任何版本。", "Nothing published yet."),
    "read_only": ("只读：只有所有者可以修改。", "Read only: only an owner can change this."),
    "err": ("未保存：", "Not saved:"),
    "fixed_fields": (
        "槽位 {slots} · 动态码 {digits} 位 · 周期 {period} 秒（租用时确定）",
        "{slots} slots · {digits}-digit codes · {period} s period (fixed at renting)",
    ),
}
FIELD_NAMES = {
    "pool_minor": ("酬金", "pool"),
    "rule": ("规则", "rule"),
    "rule_params": ("规则参数", "rule params"),
    "budget_minor": ("预算", "budget"),
    "hold_s": ("冻结期", "hold"),
    "starts_at_ms": ("开始", "starts"),
    "ends_at_ms": ("结束", "ends"),
    "label_zh": ("中文标题", "title zh"),
    "label_en": ("英文标题", "title en"),
    "landing_zh": ("中文正文", "text zh"),
    "landing_en": ("英文正文", "text en"),
    "pool_bp": ("分成", "share"),
    "pool_cap_minor": ("上限", "cap"),
    "attribution_window_s": ("归因窗口", "window"),
    "image_url": ("图片", "image"),
    "target_url": ("网上商店", "online shop"),
    "currency": ("货币", "currency"),
}


def when(ms: int | None) -> str:
    return "" if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def shown(field: str, value: Any, currency: str) -> str:
    """A setting's value as a person reads it in the history."""
    if value is None:
        return "–"
    if field.endswith("_minor"):
        return money(int(value), currency)
    if field.endswith("_s"):
        return f"{int(value) / 86400:g} d"
    if field.endswith("_at_ms"):
        return when(int(value))
    if field == "pool_bp":
        return f"{int(value) / 100:g} %"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value) or "–"
    return text if len(text) <= 60 else text[:57] + "…"


def _changes(rows: list[dict[str, Any]], currency: str) -> list[dict[str, Any]]:
    return [
        {
            "name": FIELD_NAMES.get(c["field"], (c["field"], c["field"])),
            "before": shown(c["field"], c["before"], currency),
            "after": shown(c["field"], c["after"], currency),
        }
        for c in rows
    ]


def list_page(
    merchant_name: str,
    campaigns: list[dict[str, Any]],
    csrf: str,
    owner: bool,
    query: dict[str, str],
    found: dict[str, Any] | None,
    error: dict[str, str] | None,
) -> str:
    """/merchant/campaigns: each campaign (status, version, pending draft) and the rent search."""
    return (
        environment()
        .get_template("console/campaigns.html")
        .render(
            L=CAMPAIGN_LABELS,
            merchant_name=merchant_name,
            campaigns=campaigns,
            csrf=csrf,
            owner=owner,
            query=query,
            found=found,
            error=error,
        )
    )


def edit_page(
    merchant_name: str,
    d: dict[str, Any],
    form: dict[str, str],
    preview: dict[str, Any],
    history: list[dict[str, Any]],
    csrf: str,
    owner: bool,
    preview_lang: str,
    error: dict[str, str] | None = None,
    notice: str | None = None,
) -> str:
    """/merchant/campaigns/{id}: the draft's form, the preview frame, the rule on recent chains,
    the publish button with what it changes, and the version history."""
    c = d["campaign"]
    cur = c["currency"]
    hist = [{**v, "when": when(v["published_at_ms"]), "rows": _changes(v["changes"], cur)} for v in history]
    if hist:  # the oldest version has nothing before it: all its fields would be listed
        hist[-1]["rows"] = []
    return (
        environment()
        .get_template("console/campaign.html")
        .render(
            L=CAMPAIGN_LABELS,
            merchant_name=merchant_name,
            c=c,
            d=d,
            form=form,
            csrf=csrf,
            owner=owner,
            pending=_changes(d["changes"], cur),
            preview=preview,
            history=hist,
            money=lambda v: money(v, cur),
            preview_lang=preview_lang,
            error=error,
            notice=notice,
            when=when,
        )
    )

"""The fraud review page (/merchant/review): flagged orders, each chain drawn as text (who, when,
new or not), what fired each rule, and the owner's hold / release / reject forms. zh-CN and en;
renders what cloud/services/fraud_review.py lists and knows nothing of requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cloud.services import fraud
from cloud.web.pages import environment
from cloud.web.sales_pages import money

REVIEW_LABELS = {
    "title": ("风险审核", "Fraud review"),
    "back": ("返回数据页", "Back to the dashboard"),
    "intro": ("被标记的订单：审核结束前（待审或冻结），其酬客分成不会到期结算。规则与阈值见 docs/fraud.md。",
              "Flagged orders: while a review is open or held, the order's sharer credits do not fall "
              "due. The rules and their numbers are in docs/fraud.md."),
    "all": ("全部", "All"),
    "open": ("待审", "Open"),
    "held": ("已冻结", "Held"),
    "released": ("已放行", "Released"),
    "rejected": ("已拒付", "Rejected"),
    "scan": ("重新扫描订单", "Scan the orders again"),
    "scanned": ("已扫描 {orders} 笔订单，新增 {raised} 个标记。",
                "Scanned {orders} orders, {raised} new flags."),
    "none": ("没有被标记的订单。", "No flagged orders."),
    "order": ("订单", "Order"),
    "amount": ("金额", "Amount"),
    "paid": ("酬客分成", "Sharer credits"),
    "refunded": ("已退款", "refunded"),
    "chain": ("分享链（从显示屏到买家）", "Chain (from the display to the buyer)"),
    "buyer": ("买家", "buyer"),
    "sharer": ("酬客", "sharer"),
    "phone": ("手机", "phone"),
    "level": ("第 %d 级", "level %d"),
    "via_display": ("经显示屏进店", "came by a display"),
    "via_printed": ("经印刷码进店", "came by a printed code"),
    "via_base": ("输入基础码进店", "typed the base code"),
    "person": ("用户", "person"),
    "account": ("账户", "account"),
    "new": ("新访客", "new"),
    "known": ("老访客", "seen before"),
    "acted": ("之后行动", "acted after"),
    "decided": ("决定", "Decided"),
    "hold": ("冻结", "Hold"),
    "release": ("放行", "Release"),
    "reject": ("拒付", "Reject"),
    "read_only": ("只读：只有所有者可以做出决定。", "Read only: an owner decides."),
    "err_csrf": ("表单已过期，请重试。", "The form expired. Try again."),
    fraud.VELOCITY: ("频率异常", "Velocity"),
    fraud.SELF_REFERRAL: ("自我推荐", "Self-referral"),
    fraud.FRESH_CHAIN: ("新 Cookie 链", "Fresh-cookie chain"),
    fraud.SYBIL: ("女巫链", "Sybil chain"),
}
SAME = {"visitor": ("同一部手机", "the same phone"), "person": ("同一用户的手机", "phones of one person"),
        "account": ("同一认证账户", "one verified account")}


def when(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(ms: int) -> str:
    """A duration, short: 40 s, 12 min, 3 h, 2 d."""
    s = max(0, ms) // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit}"
    return f"{s} s"


def why(rule: str, d: dict[str, Any], currency: str = "CNY") -> tuple[str, str]:
    """What fired the rule, in one sentence per language."""
    if rule == fraud.VELOCITY:
        parts = [(f"第 {c['level']} 级：进店 {c['entries']}、分享 {c['shares']}、"
                  f"经其码进店 {c['code_entries']}",
                  f"level {c['level']}: {c['entries']} entries, {c['shares']} shares, "
                  f"{c['code_entries']} entries through its code") for c in d.get("clients", [])]
        lim = (d.get("max_entries"), d.get("max_shares"), d.get("max_code_entries"),
               span(d.get("span_ms", 0)))
        return ("；".join(z for z, _ in parts) + f"（{lim[3]} 内上限 {lim[0]} / {lim[1]} / {lim[2]}）",
                "; ".join(e for _, e in parts) + f" (in {lim[3]}; limits {lim[0]} / {lim[1]} / {lim[2]})")
    if rule == fraud.SELF_REFERRAL:
        zh, en = [], []
        for p in d.get("pairs", []):
            a, b = p["levels"]
            same = SAME.get(p["same"], (p["same"], p["same"]))
            zh.append(f"第 {a} 级与第 {b} 级是{same[0]}"
                      + ("（会重复得酬）" if p["paid"] else "（已合并，不重复得酬）"))
            en.append(f"levels {a} and {b} are {same[1]}" + (" (paid twice)" if p["paid"] else
                                                              " (merged: not paid twice)"))
        return "；".join(zh) + "（第 0 级为买家）", "; ".join(en) + " (level 0 is the buyer)"
    if rule == fraud.FRESH_CHAIN:
        gap = span(d.get("gap_ms", 0))
        return (f"最后 {d.get('fresh_links')} 个环节都是新访客，且各在 {gap} 内行动",
                f"the last {d.get('fresh_links')} links were all new and each acted within {gap}")
    if rule == fraud.SYBIL:
        k, gain, lv = d.get("fakes"), money(int(d.get("gain_minor", 0)), currency), d.get("real_sharer_level")
        return (f"{k} 个一次性身份插在第 {lv} 级的酬客与买家之间；按规则多得 {gain}",
                f"{k} single-use identities between the level {lv} sharer and the buyer; "
                f"the rule pays them {gain} more")
    return rule, rule


def review_page(merchant_name: str, listed: dict[str, Any], status: str | None, csrf: str | None,
                owner: bool, note: tuple[str, str] | None = None,
                error: tuple[str, str] | None = None) -> str:
    orders = []
    for o in listed["orders"]:
        orders.append({**o, "amount": money(o["amount_minor"], o["currency"]),
                       "paid": money(o["paid_minor"], o["currency"]), "placed": when(o["placed_at_ms"]),
                       "decided": when(o["decided_at_ms"]),
                       "why": [(f["rule"], why(f["rule"], f["detail"], o["currency"])) for f in o["flags"]],
                       "links": [{**x, "at": when(x["arrived_at_ms"]), "after": span(x["acted_after_ms"])}
                                 for x in o["chain"]],
                       "moves": sorted({"held": ["release", "reject"], "open": ["hold", "release", "reject"]}
                                       .get(o["status"], []), key=["hold", "release", "reject"].index)})
    return environment().get_template("console/review.html").render(
        L=REVIEW_LABELS, merchant_name=merchant_name, orders=orders, counts=listed["counts"], status=status,
        statuses=("open", "held", "released", "rejected"), csrf=csrf, owner=owner, note=note, error=error)

"""The sales pages: the shopper's checkout code (pay.html) and the cashier's till (till.html).
Each render function takes the page's data and one language, "zh-CN" or "en", and returns HTML;
the routes pick the language (pick_lang) from ?lang=, the `lang` cookie or Accept-Language."""

from __future__ import annotations

import time
from typing import Any

from cloud.web.pages import environment
from cloud.web.qr import svg

LANGS = ("zh-CN", "en")
LANG_COOKIE = "lang"
CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "HKD": "HK$", "JPY": "¥", "GBP": "£"}

# (zh-CN, en) for the checkout code page
PAY_LABELS = {
    "title": ("到店付款", "Pay at the counter"),
    "show": ("请向收银员出示此结账码", "Show this checkout code to the cashier"),
    "code": ("结账码", "Checkout code"),
    "until": ("有效期至 {t}（{m} 分钟）", "Valid until {t} ({m} min)"),
    "again": ("过期后请返回并重新生成。", "When it expires, go back and make a new one."),
    "back": ("返回活动页", "Back to the offer"),
    "switch": ("English", "中文"),
    "retype": ("重新输入代码", "Type a code again"),
}
PAY_ERROR_TITLE = ("无法生成结账码", "No checkout code")
GO_ERROR_TITLE = ("无法前往网上商店", "Cannot open the online shop")
# (zh-CN, en) for the till
TILL_LABELS = {
    "title": ("收银台", "Till"),
    "code": ("结账码（6 位数字）", "Checkout code (6 digits)"),
    "amount": ("金额（元）", "Amount"),
    "amount_hint": ("例如 20 或 19.90", "e.g. 20 or 19.90"),
    "campaign": ("活动", "Campaign"),
    "any": ("任意活动", "Any campaign"),
    "submit": ("记录销售", "Record the sale"),
    "done": ("已记录：订单 #{o}，金额 {a}，付给酬客 {p}。", "Recorded: order #{o}, {a}, {p} to sharers."),
    "replayed": ("（此前已记录，未重复计入）", "(recorded before; not counted twice)"),
    "switch": ("English", "中文"),
    "merchant": ("商户页", "Merchant page"),
    "to_refund": ("退款", "Refund an order"),
    "to_sale": ("收银", "Record a sale"),
}
# (zh-CN, en) for the till's refunds (/till/refund)
REFUND_LABELS = {
    "title": ("退款", "Refund"),
    "ref": ("结账码或订单号", "Checkout code or order number"),
    "ref_hint": ("小票上的订单号（如 #12），或顾客付款时的 6 位结账码",
                 "The order number on the receipt (e.g. #12), or the shopper's 6-digit checkout code"),
    "find": ("查找订单", "Find the order"),
    "order": ("订单 #{o}", "Order #{o}"),
    "amount": ("金额", "Amount"),
    "when": ("时间", "Time"),
    "campaign": ("活动", "Campaign"),
    "paid": ("已付给酬客", "Paid to sharers"),
    "confirm_q": ("确认全额退款？付给酬客的 {p} 将被收回。",
                  "Refund the whole order? The {p} paid to sharers is taken back."),
    "confirm": ("确认退款 {a}", "Refund {a}"),
    "cancel": ("取消", "Cancel"),
    "done": ("已退款：订单 #{o}，{a}；收回付给酬客的 {p}。",
             "Refunded: order #{o}, {a}; {p} taken back from sharers."),
    "already": ("订单 #{o} 已于 {t} 退款，无需再退。",
                "Order #{o} was already refunded on {t}; nothing to do."),
    "replayed": ("（此前已退款，未重复退款）", "(refunded before; not refunded twice)"),
    "read_only": ("只读账号不能使用收银台。", "A read-only sign-in cannot use the till."),
    "whole_only": ("退款针对整笔订单。", "A refund is for the whole order."),
}


def pick_lang(query: str | None, cookie: str | None, accept_language: str) -> str:
    """?lang= first, then the `lang` cookie, then the first of Accept-Language we speak; zh-CN."""
    for choice in (query, cookie):
        if choice in LANGS:
            return choice
        if choice and choice.lower().startswith("zh"):
            return "zh-CN"
        if choice and choice.lower().startswith("en"):
            return "en"
    for part in accept_language.split(",")[:10]:
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "zh-CN"


ZERO_DECIMALS = frozenset({"JPY", "KRW", "VND", "CLP", "ISK"})  # ISO 4217 exponent 0


def money(minor: int, currency: str = "CNY") -> str:
    """¥20.00 from 2000 CNY, ¥2,000 from 2000 JPY (ISO 4217 exponent 2, or 0 for ZERO_DECIMALS);
    the ISO code stands in for an unknown symbol. Exact: integer arithmetic only."""
    sign = "-" if minor < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    if currency in ZERO_DECIMALS:
        return f"{sign}{symbol}{abs(minor):,}"
    units, cents = divmod(abs(minor), 100)
    return f"{sign}{symbol}{units:,}.{cents:02d}"


def _labels(table: dict[str, tuple[str, str]], lang: str) -> dict[str, str]:
    i = LANGS.index(lang)
    return {k: v[i] for k, v in table.items()}


def _clock(ms: int, utc_offset_min: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ms / 1000 + utc_offset_min * 60))


def pay_page(lang: str, code: str, expires_at_ms: int, now_ms: int, back_url: str,
             campaign_label: str, utc_offset_min: int = 480) -> str:
    """The checkout code, large, with its QR; expiry as a clock time (UTC+8 by default: China)."""
    L = _labels(PAY_LABELS, lang)
    minutes = max(1, round((expires_at_ms - now_ms) / 60000))
    until = L["until"].format(t=_clock(expires_at_ms, utc_offset_min), m=minutes)
    return environment().get_template("shopper/pay.html").render(
        lang=lang, L=L, code=code, until=until, back_url=back_url, campaign_label=campaign_label,
        qr=svg(code, f"{L['code']} {code}"), other=LANGS[1 - LANGS.index(lang)])


def pay_error_page(lang: str, message: tuple[str, str], back_url: str | None,
                   title: tuple[str, str] = PAY_ERROR_TITLE) -> str:
    """Why no checkout code could be made (or the shop not reached), and where to go next."""
    L = _labels(PAY_LABELS, lang)
    i = LANGS.index(lang)
    return environment().get_template("shopper/pay.html").render(
        lang=lang, L=L, error=message[i], error_title=title[i], back_url=back_url,
        other=LANGS[1 - LANGS.index(lang)])


def till_page(lang: str, merchant_name: str, csrf: str, idem: str, campaigns: list[dict[str, Any]],
              form: dict[str, str] | None = None, error: tuple[str, str] | None = None,
              done: dict[str, Any] | None = None) -> str:
    """The till: checkout code and amount; `error` (zh, en) or `done` (the order, and whether it
    was a replay) above the form; `form` keeps what was typed after an error."""
    L = _labels(TILL_LABELS, lang)
    done_text = None
    if done is not None:
        answer = done["answer"]
        done_text = L["done"].format(o=answer["order_id"], a=money(answer["amount_minor"]),
                                     p=money(answer["paid_minor"]))
        if done["replayed"]:
            done_text += " " + L["replayed"]
    return environment().get_template("till.html").render(
        lang=lang, L=L, merchant_name=merchant_name, csrf=csrf, idem=idem, campaigns=campaigns,
        form=form or {}, error=error[LANGS.index(lang)] if error else None, done=done_text,
        other=LANGS[1 - LANGS.index(lang)])


def _when(ms: int | None, utc_offset_min: int) -> str:
    return "" if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000 + utc_offset_min * 60))


def _order_facts(o: dict[str, Any], L: dict[str, str], utc_offset_min: int) -> dict[str, str]:
    cur = o["currency"]
    return {"title": L["order"].format(o=o["order_id"]), "amount": money(o["amount_minor"], cur),
            "paid": money(o["paid_minor"], cur), "when": _when(o["created_at_ms"], utc_offset_min),
            "base_code": o["base_code"], "id": str(o["order_id"])}


def refund_page(lang: str, merchant_name: str, csrf: str, typed: str = "",
                order: dict[str, Any] | None = None, error: tuple[str, str] | None = None,
                done: dict[str, Any] | None = None, utc_offset_min: int = 480) -> str:
    """The till's refund: a reference to type; with `order` (orders' summary, till_refunds) the
    confirmation step, or the note that it was refunded already; `done` the order after the
    refund (its "replayed" says it had been before). Times in UTC+8 by default (China)."""
    L = _labels(REFUND_LABELS, lang)
    shown = done or order
    facts = _order_facts(shown, L, utc_offset_min) if shown is not None else None
    message = already = None
    if done is not None and facts is not None:
        message = L["done"].format(o=done["order_id"], a=facts["amount"], p=facts["paid"])
        message += " " + L["replayed"] if done.get("replayed") else ""
    elif order is not None and order["status"] == "refunded":
        already = L["already"].format(o=order["order_id"], t=_when(order["refunded_at_ms"], utc_offset_min))
    return environment().get_template("till.html").render(
        lang=lang, L=_labels(TILL_LABELS, lang), R=L, refund=True, merchant_name=merchant_name, csrf=csrf,
        form={"ref": typed}, confirming=order is not None and already is None and done is None, facts=facts,
        already=already, error=error[LANGS.index(lang)] if error else None, done=message,
        other=LANGS[1 - LANGS.index(lang)])

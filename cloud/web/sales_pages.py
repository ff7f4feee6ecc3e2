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

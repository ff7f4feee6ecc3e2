"""The shopper's own page, /me (我的): earnings in the campaign's currency (held and available,
with dates), a line per payout, their codes, the recovery code shown once, and "add this phone".
One language per page, "zh-CN" or "en" (the route picks it: sales_pages.pick_lang)."""

from __future__ import annotations

import time
from typing import Any

from cloud.web.pages import environment
from cloud.web.sales_pages import LANGS, money

CHINA_UTC_OFFSET_MIN = 480  # dates as a shopper in China reads them

# (zh-CN, en) for every label on /me
ME_LABELS = {
    "title": ("我的收益", "My earnings"),
    "switch": ("English", "中文"),
    "type_code": ("输入 M码", "Type a code"),
    "balance": ("余额", "Balance"),
    "held": ("冻结中", "Held"),
    "available": ("可提取", "Available"),
    "next_due": ("{d} 起可提取", "available from {d}"),
    "hold_note": ("为防退款，分享收益会冻结一段时间后才可提取。",
                  "Payouts are held for a while in case the order is refunded, then become available."),
    "none": ("还没有收益。分享您的码：朋友通过它购买后，您的分成会显示在这里。",
             "No earnings yet. Share your code: when a friend buys through it, your part shows here."),
    "history": ("收益明细", "History"),
    "level": ("第 {n} 级", "level {n}"),
    "level_hint": ("第 1 级：买家由您带来；第 2 级：由您带来的人再带来……",
                   "Level 1: you brought the buyer; level 2: you brought the person who brought them; ..."),
    "ch_till": ("到店", "at the till"),
    "ch_online": ("网店", "online"),
    "ch_api": ("订单", "order"),
    "held_until": ("冻结至 {d}", "held until {d}"),
    "paid": ("可提取", "available"),
    "refunded": ("已退款", "refunded"),
    "payout": ("收益编号", "Payout"),
    "proof": ("下载证明（mcode verify 可核验）", "Download its proof (check it with mcode verify)"),
    "codes": ("我的码", "My codes"),
    "share_codes": ("我的分享码", "My share codes"),
    "saved": ("已保存", "Saved"),
    "no_codes": ("还没有码。输入店里显示屏上的 M码即可开始。",
                 "No codes yet. Type the M-code a shop's display shows to start."),
    "recovery": ("保住收益", "Keep your earnings"),
    "recovery_new": ("您的恢复码", "Your recovery code"),
    "recovery_once": ("请现在抄下或截图保存。它只显示这一次。手机丢失后，在新手机上输入它即可看到全部收益。",
                      "Write it down or take a screenshot now: it is shown only this once. If you lose this "
                      "phone, type it on a new one to see all your earnings."),
    "copy_code": ("复制", "Copy"),
    "phones": ("此手机是您的 {n} 部手机之一。", "This phone is one of your {n} phones."),
    "phone_one": ("您的收益与此手机相连。", "Your earnings are tied to this phone."),
    "make_new": ("生成新的恢复码", "Make a new recovery code"),
    "make_new_hint": ("旧的恢复码将失效。", "The old code stops working."),
    "add": ("添加此手机", "Add this phone"),
    "add_hint": ("换了手机？输入您的恢复码，这部手机就会显示您的全部收益。",
                 "New phone? Type your recovery code and this phone shows all your earnings."),
    "code_field": ("恢复码（16 位字母和数字）", "Recovery code (16 letters and digits)"),
    "add_submit": ("添加", "Add"),
    "added": ("已添加此手机。", "This phone is added."),
    "err_csrf": ("表单已过期，请重试。", "The form expired. Try again."),
    "err_nothing": ("这部手机还没有码，无需恢复码。先输入一个 M码。",
                    "This phone has no codes yet, so there is nothing to keep. Type an M-code first."),
}
CHANNELS = {"till": "ch_till", "online": "ch_online"}


def date(ms: int, lang: str, utc_offset_min: int = CHINA_UTC_OFFSET_MIN) -> str:
    """12月21日 / 21 Dec 2026, in China's time zone."""
    t = time.gmtime(ms / 1000 + utc_offset_min * 60)
    if lang == "zh-CN":
        return f"{t.tm_year}年{t.tm_mon}月{t.tm_mday}日"
    return time.strftime("%-d %b %Y", t)


def _labels(lang: str) -> dict[str, str]:
    i = LANGS.index(lang)
    return {k: v[i] for k, v in ME_LABELS.items()}


def _totals(totals: list[dict[str, Any]], L: dict[str, str], lang: str) -> list[dict[str, str]]:
    out = []
    for t in totals:
        cur, due = t["currency"], t["next_due_at_ms"]
        out.append({"balance": money(t["balance_minor"], cur), "held": money(t["held_minor"], cur),
                    "available": money(t["due_minor"], cur),
                    "next_due": L["next_due"].format(d=date(due, lang)) if due else ""})
    return out


def _history(history: list[dict[str, Any]], L: dict[str, str], lang: str) -> list[dict[str, Any]]:
    key = "zh" if lang == "zh-CN" else "en"
    out = []
    for h in history:
        state = (L["refunded"] if h["refunded"] else
                 L["held_until"].format(d=date(h["due_at_ms"], lang)) if h["held"] else L["paid"])
        out.append({"id": h["payout_id"], "label": h["label"][key] or h["base_code"],
                    "amount": money(h["amount_minor"], h["currency"]), "refunded": h["refunded"],
                    "held": h["held"] and not h["refunded"],
                    "meta": " · ".join([L["level"].format(n=h["level"]),
                                        L[CHANNELS.get(h["channel"], "ch_api")],
                                        date(h["booked_at_ms"], lang)]),
                    "state": state})
    return out


def me_page(lang: str, data: dict[str, Any], csrf: str, saved: list[dict[str, str]] | None = None,
            recovery_code: str | None = None, notice: str | None = None,
            error: tuple[str, str] | None = None) -> str:
    """/me from people.earnings(); `saved` is "my codes" (label, code, url); `recovery_code` is
    shown once; `notice` a key of ME_LABELS; `error` (zh, en)."""
    L = _labels(lang)
    key = "zh" if lang == "zh-CN" else "en"
    listed = {c["code"] for c in saved or []}  # a saved campaign already shows its share code
    share_codes = [{"label": c["label"][key], "code": c["share_code"]} for c in data["share_codes"]
                   if c["share_code"] not in listed]
    return environment().get_template("shopper/me.html").render(
        lang=lang, L=L, other=LANGS[1 - LANGS.index(lang)], csrf=csrf,
        totals=_totals(data["totals"], L, lang), history=_history(data["history"], L, lang),
        share_codes=share_codes, saved=saved or [], person=data["person"],
        phones=L["phones"].format(n=data["phones"]) if data["phones"] > 1 else L["phone_one"],
        recovery_code=recovery_code, notice=L[notice] if notice else None,
        error=error[LANGS.index(lang)] if error else None)

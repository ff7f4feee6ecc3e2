"""The shopper's pages: `/` (type a code) and a campaign's landing page (/c/{base}) with Save and
Share. Each render function takes the page's data and one language, "zh-CN" or "en" (the routes
pick it with sales_pages.pick_lang), and returns HTML. No inline script: static/shopper.js only
enhances (Web Share, copy); every action is a plain link or form."""

from __future__ import annotations

from typing import Any

from cloud.web.pages import environment
from cloud.web.qr import svg
from cloud.web.sales_pages import LANGS

HOME = {
    "title": ("输入 M码", "Type an M-code"),
    "lead": ("输入您在显示屏、海报或朋友分享中看到的数字。",
             "Type the number you see on a display, a poster or in a friend's message."),
    "field": ("M码", "M-code"),
    "hint": ("例如 4919-27、491927 或 4919", "e.g. 4919-27, 491927 or 4919"),
    "go": ("前往", "Go"),
    "me": ("我的码与收益", "My codes and earnings"),
    "switch": ("English", "中文"),
    "about": ("输入代码后，您会看到商家的页面，可以保存、分享或付款。",
              "A code takes you to the merchant's page, where you can save, share or pay."),
}
# what to do next, by the code of the refusal (zh-CN, en)
NEXT = {
    "malformed_code": ("请只输入数字，例如 4919-27 或 4919。", "Type digits only, e.g. 4919-27 or 4919."),
    "unknown_code": ("请检查数字是否输入正确；若是显示屏上的码，请重新看一眼再输入。",
                     "Check the digits; if it came from a display, look again and type what it shows now."),
    "code_expired": ("显示屏上的码每隔一段时间会变化：请输入它现在显示的码。",
                     "A display's code changes every few minutes: type the one it shows now."),
    "campaign_not_started": ("活动开始后再试。", "Try again once the offer has started."),
    "campaign_ended": ("该活动已结束，可以输入其他代码。",
                       "This offer has ended; you can type another code."),
    "rate_limited": ("尝试次数过多，请稍等片刻再试。", "Too many tries: wait a moment and try again."),
    "no_entry": ("请先输入显示屏或朋友给您的代码。", "First type the code from a display or a friend."),
    "share_limit": ("您在此活动中的分享码已达上限，请分享已有的代码。",
                    "You have all the share codes this offer allows: share one you have."),
    "bad_form": ("表单已过期，请重试。", "The form expired: try again."),
}
ERROR_TITLE = ("无法打开此代码", "This code did not open")
LANDING = {
    "via_display": ("您通过店内显示屏进入", "You came from a display in the shop"),
    "via_printed": ("您通过印刷的代码进入", "You came from a printed code"),
    "via_share": ("您通过朋友的分享进入", "You came through a friend's share"),
    "via_base": ("您输入了活动的基础码", "You typed the offer's base code"),
    "no_entry": ("输入显示屏上的码，即可保存、分享或付款。",
                 "Type the code a display shows to save, share or pay."),
    "shop": ("前往网上商店", "Go to the online shop"),
    "pay": ("到店付款", "Pay at the counter"),
    "save": ("保存到我的码", "Save to my codes"),
    "saved": ("已保存到我的码", "Saved to my codes"),
    "share_title": ("分享并赚取酬金", "Share and earn"),
    "share_lead": ("朋友通过您的代码购买时，您会获得酬金。",
                   "When a friend buys through your code, you are paid."),
    "get_share": ("生成我的分享码", "Make my share code"),
    "your_code": ("您的分享码", "Your share code"),
    "link": ("分享链接", "Share link"),
    "share": ("分享", "Share"),
    "copy": ("复制链接", "Copy the link"),
    "copied": ("已复制", "Copied"),
    "by_hand": ("也可以把代码或链接抄给朋友。", "Or give your friend the code or the link by hand."),
    "qr": ("分享码二维码", "QR code of your share link"),
    "not_started": ("活动尚未开始。", "This offer has not started yet."),
    "ended": ("活动已结束。", "This offer has ended."),
    "retype": ("输入其他代码", "Type another code"),
    "me": ("我的码与收益", "My codes and earnings"),
    "switch": ("English", "中文"),
    "field": ("M码", "M-code"),
    "go": ("前往", "Go"),
    "enter_base": ("不在店里？以基础码继续", "Not in the shop? Continue with the base code"),
}


def _pick(table: dict[str, tuple[str, str]], lang: str) -> dict[str, str]:
    i = LANGS.index(lang)
    return {k: v[i] for k, v in table.items()}


def _other(lang: str) -> str:
    return LANGS[1 - LANGS.index(lang)]


def home_page(lang: str, typed: str = "", error: dict[str, str] | None = None) -> str:
    """`/`: one numeric field in a plain GET form. `error` is {"code", "message", "message_zh"} of
    a refused code: shown above the field with what to do next, the typed text kept."""
    i = LANGS.index(lang)
    problem = None
    if error is not None:
        said = error["message_zh"] if i == 0 else error["message"]
        nxt = NEXT.get(error["code"], NEXT["unknown_code"])[i]
        problem = {"title": ERROR_TITLE[i], "said": said, "next": nxt}
    return environment().get_template("shopper/home.html").render(
        lang=lang, L=_pick(HOME, lang), typed=typed[:40], problem=problem, other=_other(lang))


def landing_page(lang: str, data: dict[str, Any], share_url: str | None, csrf: str,
                 notice: str | None = None) -> str:
    """A campaign's landing page from landing.page(); `share_url` is the absolute share link when
    the visitor has a share code (shown as text, link and QR). `notice` is a NEXT code or "saved"."""
    i = LANGS.index(lang)
    L = _pick(LANDING, lang)
    c = data["campaign"]
    key = "zh" if i == 0 else "en"
    entry = data["entry"]
    qr = svg(share_url, L["qr"]) if share_url else None
    note = None
    if notice in NEXT:
        note = NEXT[notice][i]
    return environment().get_template("shopper/landing.html").render(
        lang=lang, L=L, c=c, title=c["label"][key] or c["label"]["zh" if key == "en" else "en"],
        text=c["text"][key], entry=entry, via=L[f"via_{entry['via']}"] if entry else None,
        share_code=data["share_code"], share_url=share_url, qr=qr, saved=data["saved"], csrf=csrf,
        note=note, other=_other(lang))

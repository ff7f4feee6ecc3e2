"""Checkout codes (结账码): "Pay at the counter". The shopper's landing page shows a short numeric
code (and its QR); the cashier types it with the amount at the till (GET/POST /till, or
POST /sales/till), and the sale is attributed to the shopper's entry.

Invariants:
- A code is CODE_DIGITS random digits, bound to one entry, valid until expires_at_ms (a setting,
  15 minutes by default), and used by at most one order: it is marked used inside the order's
  transaction, under the campaign's lock (cloud/services/orders.py), so two tills cannot both use it.
- Codes are unique per merchant among the rows kept (a unique constraint), so a cashier needs to
  name no campaign. Rows expired more than KEEP_EXPIRED_MS ago are swept when the merchant's next
  code is made; until then a late cashier is told "expired", not "unknown".
- Asking again for an entry's code gives the same code while it has REUSE_MIN_LEFT_MS left, so a
  reload does not make a new one.
- Codes are looked up only within the cashier's merchant: another tenant's code is unknown.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.errors import ApiError, bad_request, conflict, not_found
from cloud.services import orders
from cloud.store.engine import SessionFactory
from cloud.store.models import Campaign, CheckoutCode, Entry

CODE_DIGITS = 6
TTL_S = 15 * 60
REUSE_MIN_LEFT_MS = 5 * 60 * 1000
KEEP_EXPIRED_MS = 24 * 3600 * 1000
DRAWS = 20  # random codes tried per attempt before giving up (the space is 10^6 per merchant)
ATTEMPTS = 3


@dataclass(frozen=True)
class Found:
    """A checkout code as the till found it (checked again under the order's lock)."""
    id: int
    entry_id: str
    campaign_id: int


def unknown_entry() -> ApiError:
    return not_found("unknown_entry", "no such entry: type the code again", "没有该进店记录：请重新输入代码")


def issue(sf: SessionFactory, entry_id: str, now_ms: int, ttl_s: int = TTL_S) -> dict[str, Any]:
    """{code, expires_at_ms, label: {zh, en}} for the entry: its live code, or a new one (label is
    the campaign's). 404 unknown_entry; 409
    campaign_released / campaign_not_started / campaign_ended / outside_window when no sale could
    be attributed to the entry now."""
    for _ in range(ATTEMPTS):
        try:
            with sf.begin() as s:
                return _issue(s, entry_id, now_ms, ttl_s)
        except IntegrityError:  # another request drew the same code first: draw again
            continue
    raise ApiError(503, "checkout_busy", "no checkout code could be made; try again",
                   "暂时无法生成结账码，请重试")


def _issue(s: Session, entry_id: str, now_ms: int, ttl_s: int) -> dict[str, Any]:
    e = s.get(Entry, entry_id) if 1 <= len(entry_id) <= 32 else None
    c = s.get(Campaign, e.campaign_id) if e is not None else None
    if e is None or c is None:
        raise unknown_entry()
    orders.check_open(c, now_ms)
    orders.check_window(c, e, now_ms)
    live = s.scalar(select(CheckoutCode).where(
        CheckoutCode.entry_id == e.id, CheckoutCode.order_id.is_(None),
        CheckoutCode.expires_at_ms > now_ms + REUSE_MIN_LEFT_MS).order_by(CheckoutCode.expires_at_ms.desc()))
    label = {"zh": c.label_zh, "en": c.label_en}
    if live is not None:
        return {"code": live.code, "expires_at_ms": live.expires_at_ms, "label": label}
    s.execute(delete(CheckoutCode).where(CheckoutCode.merchant_id == c.merchant_id,
                                         CheckoutCode.expires_at_ms < now_ms - KEEP_EXPIRED_MS))
    for _ in range(DRAWS):
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        taken = s.scalar(select(CheckoutCode.id).where(CheckoutCode.merchant_id == c.merchant_id,
                                                       CheckoutCode.code == code))
        if taken is None:
            break
    else:
        raise ApiError(503, "checkout_busy", "no checkout code could be made; try again",
                       "暂时无法生成结账码，请重试")
    row = CheckoutCode(merchant_id=c.merchant_id, campaign_id=c.id, entry_id=e.id, code=code,
                       created_at_ms=now_ms, expires_at_ms=now_ms + ttl_s * 1000)
    s.add(row)
    s.flush()
    return {"code": code, "expires_at_ms": row.expires_at_ms, "label": label}


def normalize(typed: str) -> str:
    """What a cashier typed, as the code: full-width digits folded (NFKC), spaces and dashes
    dropped. 400 bad_checkout_code unless that leaves exactly CODE_DIGITS digits."""
    folded = unicodedata.normalize("NFKC", typed[:40])
    code = "".join(ch for ch in folded if ch not in " -\u00a0\u2009")
    if len(code) != CODE_DIGITS or not (code.isascii() and code.isdigit()):
        raise bad_request("bad_checkout_code",
                          f"a checkout code is {CODE_DIGITS} digits, as the shopper's phone shows it",
                          f"结账码为 {CODE_DIGITS} 位数字，以顾客手机上显示的为准")
    return code


def find(sf: SessionFactory, merchant_id: int, typed: str, campaign_id: int | None = None) -> Found:
    """The merchant's checkout code as typed (used or expired ones too: the order says so).
    404 unknown_checkout_code; 409 wrong_campaign when the till is set to another campaign."""
    code = normalize(typed)
    with sf() as s:
        row = s.scalar(select(CheckoutCode).where(CheckoutCode.merchant_id == merchant_id,
                                                  CheckoutCode.code == code))
        if row is None:
            raise not_found("unknown_checkout_code", "no such checkout code: check the digits on the "
                            "shopper's phone", "没有该结账码：请核对顾客手机上的数字")
        if campaign_id is not None and row.campaign_id != campaign_id:
            raise conflict("wrong_campaign", "this checkout code belongs to another campaign of yours",
                           "该结账码属于您的另一个活动")
        return Found(row.id, row.entry_id, row.campaign_id)


def claimer(found: Found) -> orders.AfterBook:
    """The order's after_book hook: refuse a used or expired code, else mark it used by the order."""
    def claim(s: Session, order_id: int, t: int) -> None:
        row = s.get(CheckoutCode, found.id)
        if row is None:  # swept since it was found: it had expired a day before
            raise _expired()
        s.refresh(row)
        if row.order_id is not None:
            raise conflict("checkout_code_used", "this checkout code was already used for a sale; ask "
                           "the shopper to make a new one", "该结账码已用于一笔销售；请顾客重新生成")
        if t > row.expires_at_ms:
            raise _expired()
        row.order_id = order_id
    return claim


def _expired() -> ApiError:
    return conflict("checkout_code_expired", "this checkout code has expired; ask the shopper to "
                    "show a new one (Pay at the counter)", "该结账码已过期；请顾客重新生成（到店付款）")

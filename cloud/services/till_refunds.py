"""Refunds at the till (收银台退款): the cashier finds an order by the checkout code the shopper
paid with or by the order number on the receipt ("#12"), sees it, and confirms; the refund itself is
cloud/services/orders.py `refund` (the whole order: every payout reversed, the budget given back;
a second refund answers like the first).

How a reference is read: "#" or "订单"/"No." before digits, or digits that are not CODE_DIGITS long,
name an order number; exactly CODE_DIGITS digits are a checkout code first (the one the sale used),
else an order number. The cashier confirms on a page showing the order's amount and time, so a
six-digit order number read as a code is caught before anything is refunded. Every lookup is within
the cashier's merchant: another tenant's order or code is "no such order"."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import func, select

from cloud.errors import ApiError, bad_request, not_found
from cloud.services import checkout, orders
from cloud.services.auth import MERCHANT, Principal
from cloud.store.engine import SessionFactory
from cloud.store.models import Campaign, CheckoutCode, Order, Payout

MAX_ORDER_ID = 2**31 - 1  # orders.id is an INTEGER on both databases
_REF = re.compile(r"(?:#|no\.?|订单|订单号)?([0-9]{1,12})")


def unknown_order() -> ApiError:
    return not_found("unknown_order", "no such order: check the order number on the receipt or the "
                     "checkout code", "没有该订单：请核对小票上的订单号或结账码")


def read_ref(typed: str) -> tuple[str, str]:
    """("code", digits) or ("order", digits) for what the cashier typed; 400 bad_order_ref."""
    text = unicodedata.normalize("NFKC", typed[:40]).strip().lower()
    text = "".join(ch for ch in text if ch not in " -\u00a0\u2009")
    m = _REF.fullmatch(text)
    if m is None:
        raise bad_request("bad_order_ref", "type the checkout code (6 digits) or the order number, e.g. #12",
                          "请输入结账码（6 位数字）或订单号，例如 #12")
    digits = m.group(1)
    named = text[0] != digits[0]  # a prefix says it is an order number
    return ("code" if len(digits) == checkout.CODE_DIGITS and not named else "order"), digits


def _summary(s: Any, o: Order) -> dict[str, Any]:
    c = s.get(Campaign, o.campaign_id)
    paid = s.scalar(select(func.coalesce(func.sum(Payout.amount_minor), 0))
                    .where(Payout.order_id == o.id, Payout.payee == "participant"))
    return {"order_id": o.id, "amount_minor": o.amount_minor, "currency": c.currency if c else "CNY",
            "base_code": c.base_code if c else "", "channel": o.channel, "created_at_ms": o.created_at_ms,
            "status": o.status, "refunded_at_ms": o.refunded_at_ms, "paid_minor": int(paid or 0)}


def find_order(sf: SessionFactory, merchant_id: int, typed: str) -> dict[str, Any]:
    """The merchant's order the reference names, summarised for the confirmation step (status
    "refunded" when it was already); 400 bad_order_ref, 404 unknown_order."""
    kind, digits = read_ref(typed)
    with sf() as s:
        o = None
        if kind == "code":
            oid = s.scalar(select(CheckoutCode.order_id).where(CheckoutCode.merchant_id == merchant_id,
                                                               CheckoutCode.code == digits))
            o = s.get(Order, oid) if oid is not None else None
        if o is None and int(digits) <= MAX_ORDER_ID:
            o = s.get(Order, int(digits))
        if o is None or o.merchant_id != merchant_id:
            raise unknown_order()
        return _summary(s, o)


def refund(sf: SessionFactory, merchant_id: int, order_id: int, at_ms: int) -> tuple[dict[str, Any], bool]:
    """(the order's summary after the refund, replayed): the whole order refunded through
    orders.refund; replayed when it had been refunded before. 404 unknown_order."""
    if not 1 <= order_id <= MAX_ORDER_ID:
        raise unknown_order()
    _, replayed = orders.refund(sf, Principal(MERCHANT, merchant_id), order_id, at_ms)
    with sf() as s:
        o = s.get(Order, order_id)
        assert o is not None
        return _summary(s, o), replayed

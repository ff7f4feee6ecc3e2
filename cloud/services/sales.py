"""Sales attributed two ways, each booked as an order with its share chain (cloud/services/orders.py):

- online: the merchant's shop server reports a sale with the click token the shopper's redirect
  carried (cloud/services/clicks.py), like Dub's server-side sale tracking;
- till: the cashier types the shopper's checkout code and the amount (cloud/services/checkout.py).

Both are idempotent per (merchant, Idempotency-Key): a repeat answers like the first time, before
any other check, so a retry after a lost answer never turns into "code used". Both are refused
(409 with a code) when the campaign was released (campaign_released), has not started or has ended
(campaign_not_started, campaign_ended), or the entry is older than the campaign's attribution
window (outside_window): last touch, measured from the entry the token or code is bound to.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from cloud.errors import bad_request
from cloud.services import checkout, clicks, orders
from cloud.store.engine import SessionFactory

ONLINE, TILL = "online", "till"
MAX_AMOUNT_MINOR = 10**15  # what a till may type: ten trillion yuan
_AMOUNT = re.compile(r"([0-9]{1,13})(?:[.]([0-9]{1,2}))?")


def parse_amount(typed: str) -> int:
    """A cashier's amount in major units ("20", "19.9", "19.90", full-width digits) as exact minor
    units (two decimals, as CNY, USD and EUR have). 400 bad_amount otherwise."""
    text = unicodedata.normalize("NFKC", typed[:40]).strip().lstrip("¥$€").replace(" ", "")
    m = _AMOUNT.fullmatch(text)
    minor = int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0")) if m else 0
    if not 1 <= minor <= MAX_AMOUNT_MINOR:
        raise bad_request("bad_amount", "type the amount as a number above zero, e.g. 20 or 19.90",
                          "请输入大于零的金额，例如 20 或 19.90")
    return minor


def online(sf: SessionFactory, merchant_id: int, idempotency_key: str, click_token: str,
           amount_minor: int, at_ms: int) -> tuple[dict[str, Any], bool]:
    """(answer, replayed) for a sale reported with a click token of this merchant's campaigns."""
    entry_id = clicks.entry_of(sf, merchant_id, click_token)
    return orders.place_order(sf, merchant_id, idempotency_key, entry_id, amount_minor, at_ms, ONLINE)


def till(sf: SessionFactory, merchant_id: int, idempotency_key: str, checkout_code: str,
         amount_minor: int, at_ms: int, campaign_id: int | None = None) -> tuple[dict[str, Any], bool]:
    """(answer, replayed) for a sale at the counter: the code is used by this order, or refused
    (unknown_checkout_code 404; wrong_campaign, checkout_code_used, checkout_code_expired 409)."""
    found = checkout.find(sf, merchant_id, checkout_code, campaign_id)
    return orders.place_order(sf, merchant_id, idempotency_key, found.entry_id, amount_minor, at_ms,
                              TILL, after_book=checkout.claimer(found))

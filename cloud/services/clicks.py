"""Click tokens (点击凭证), the way Dub appends `dub_id`: a shopper on a campaign's landing page who
goes on to the merchant's online service passes through GET /go/{entry}, which records a click and
redirects to the campaign's target URL with `mcode_click=<token>` added to its query. The
merchant's shop keeps the token and reports the sale with it, server to server
(POST /sales/online, cloud/services/sales.py).

Invariants:
- A token is 128 random bits; only its SHA-256 is stored, so a copy of the table attributes no sale.
- Each click is a new token bound to one entry (the touch it came from); a token may report
  several sales (a shopper may buy twice), each with its own Idempotency-Key, all within the
  campaign's attribution window of that entry.
- A token is looked up only within the reporting merchant's campaigns: another tenant's token is
  unknown, as if it did not exist.
"""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import select

from cloud.errors import ApiError, bad_request, conflict, not_found
from cloud.store.engine import SessionFactory
from cloud.store.models import Campaign, Click, Entry

TOKEN_PARAM = "mcode_click"
TOKEN_BYTES = 16
MAX_TOKEN_LEN = 64  # a longer "token" is refused before it is hashed


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def with_token(target_url: str, token: str) -> str:
    """`target_url` with the token added to its query; its own query and fragment kept as they are."""
    parts = urlsplit(target_url)
    extra = urlencode({TOKEN_PARAM: token})
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def no_target() -> ApiError:
    return not_found("no_target", "this campaign has no online shop to go to",
                     "该活动没有可前往的网上商店")


def click(sf: SessionFactory, entry_id: str, now_ms: int) -> str:
    """Record a click from `entry_id` and return the URL to redirect to. 404 unknown_entry or
    no_target (the campaign has no target URL); 409 campaign_released / campaign_ended."""
    with sf.begin() as s:
        e = s.get(Entry, entry_id) if 1 <= len(entry_id) <= 32 else None
        c = s.get(Campaign, e.campaign_id) if e is not None else None
        if e is None or c is None:
            raise not_found("unknown_entry", "no such entry: type the code again",
                            "没有该进店记录：请重新输入代码")
        if c.released_at_ms is not None:
            raise conflict("campaign_released", "this campaign has ended", "该活动已结束")
        if c.ends_at_ms is not None and now_ms > c.ends_at_ms:
            raise conflict("campaign_ended", "this campaign has ended", "该活动已结束")
        target = c.target_url
        if not target:
            raise no_target()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        s.add(Click(token_hash=hash_token(token), entry_id=e.id, campaign_id=c.id, created_at_ms=now_ms))
        return with_token(target, token)


def entry_of(sf: SessionFactory, merchant_id: int, token: str) -> str:
    """The entry a click token of this merchant's campaigns was made from; 404 unknown_click."""
    t = token.strip()
    if not 1 <= len(t) <= MAX_TOKEN_LEN:
        raise bad_request("bad_click_token", f"click_token must be 1 to {MAX_TOKEN_LEN} characters, "
                          f"as the {TOKEN_PARAM} query parameter brought it",
                          f"click_token 须为 1 至 {MAX_TOKEN_LEN} 个字符，即 {TOKEN_PARAM} 参数带来的值")
    with sf() as s:
        row = s.execute(select(Click.entry_id).join(Campaign, Campaign.id == Click.campaign_id).where(
            Click.token_hash == hash_token(t), Campaign.merchant_id == merchant_id)).first()
    if row is None:
        raise not_found("unknown_click", "no such click token in your campaigns",
                        "您的活动中没有该点击凭证")
    entry_id: str = row[0]
    return entry_id

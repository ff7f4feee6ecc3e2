"""The landing page (蓝页 / M页) of a campaign as one shopper sees it: the merchant's title, text and
image, the shopper's own entry (found by their visitor cookie, so no entry id is in the page's
address), their share code and whether they saved it. Sharing from the page reuses the shopper's
code in that campaign, or makes one from their latest entry (codes.share, with its caps)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import ApiError, not_found
from cloud.services import codes
from cloud.store.engine import SessionFactory
from cloud.store.models import Campaign, Entry, Participant, SavedCode


def unknown(text: str) -> ApiError:
    return not_found("unknown_code", f"no campaign answers to {text[:20]}", f"没有与 {text[:20]} 对应的活动")


def _campaign(s: Session, base_code: str) -> Campaign:
    if not (base_code.isascii() and base_code.isdigit() and len(base_code) <= codes.MAX_BASE_DIGITS):
        raise unknown(base_code)
    c = s.scalar(select(Campaign).where(Campaign.base_code == base_code, Campaign.released_at_ms.is_(None)))
    if c is None:
        raise unknown(base_code)
    return c


def form_token(key: bytes, visitor: str) -> str:
    """The token of the shopper's forms (save, share): an HMAC of their signed visitor id under the
    visitor key, so it needs no storage and only this visitor's page has it."""
    mac = hmac.new(key, b"mcode shopper form\0" + visitor.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def form_token_ok(key: bytes, visitor: str, token: str) -> bool:
    return hmac.compare_digest(form_token(key, visitor), token[:64])


def _latest_entry(s: Session, campaign_id: int, visitor: str) -> Entry | None:
    return s.scalar(select(Entry).where(Entry.campaign_id == campaign_id, Entry.visitor == visitor)
                    .order_by(Entry.created_at_ms.desc(), Entry.id).limit(1))


def _own_share(s: Session, campaign_id: int, visitor: str) -> str | None:
    code: str | None = s.scalar(select(Participant.share_code).where(
        Participant.campaign_id == campaign_id, Participant.visitor == visitor)
        .order_by(Participant.id.desc()).limit(1))
    return code


def status(c: Campaign, now_ms: int) -> str:
    """running, not_started or ended (a released campaign is not found at all)."""
    if c.starts_at_ms is not None and now_ms < c.starts_at_ms:
        return "not_started"
    if c.ends_at_ms is not None and now_ms >= c.ends_at_ms:
        return "ended"
    return "running"


def image_origin(url: str | None) -> str | None:
    """scheme://host[:port] of the landing image, for the page's Content-Security-Policy."""
    if not url:
        return None
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}" if p.scheme == "https" and p.netloc else None


def page(sf: SessionFactory, base_code: str, visitor: str | None, now_ms: int) -> dict[str, Any]:
    """What the landing page shows this visitor; 404 unknown_code for a base code no live campaign
    rents."""
    with sf() as s:
        c = _campaign(s, base_code)
        e = _latest_entry(s, c.id, visitor) if visitor else None
        share = _own_share(s, c.id, visitor) if visitor else None
        saved = visitor is not None and s.scalar(select(SavedCode.id).where(
            SavedCode.visitor == visitor, SavedCode.campaign_id == c.id)) is not None
        return {"campaign": {"id": c.id, "base_code": c.base_code,
                             "label": {"zh": c.label_zh, "en": c.label_en},
                             "text": {"zh": c.landing_zh, "en": c.landing_en},
                             "image_url": c.image_url, "has_target": bool(c.target_url),
                             "currency": c.currency, "status": status(c, now_ms)},
                "entry": None if e is None else {"id": e.id, "via": e.via, "code": e.code, "depth": e.depth},
                "share_code": f"{c.base_code}-{share}" if share else None, "saved": saved}


def share(sf: SessionFactory, base_code: str, visitor: str, max_per_visitor: int,
          before_new: Callable[[], None]) -> str:
    """The visitor's share code in this campaign (BASE-NNNNNN): the one they hold, else a new one
    from their latest entry (codes.share: 409 share_limit, and before_new's per-address limit).
    404 no_entry when they never entered the campaign from this phone."""
    with sf() as s:
        c = _campaign(s, base_code)
        held = _own_share(s, c.id, visitor)
        if held is not None:
            return f"{c.base_code}-{held}"
        e = _latest_entry(s, c.id, visitor)
        if e is None:
            raise not_found("no_entry", "this phone has not entered this campaign yet: type its code first",
                            "此手机尚未进入该活动：请先输入代码")
        entry_id = e.id
    code: str = codes.share(sf, entry_id, max_per_visitor, before_new=before_new)["share_code"]
    return code


def entry_base(sf: SessionFactory, entry_id: str) -> str | None:
    """The base code of an entry's live campaign (for links that still carry an entry id)."""
    if not 1 <= len(entry_id) <= 32:
        return None
    with sf() as s:
        row = s.execute(select(Campaign.base_code).join(Entry, Entry.campaign_id == Campaign.id)
                        .where(Entry.id == entry_id, Campaign.released_at_ms.is_(None))).first()
        return None if row is None else str(row[0])

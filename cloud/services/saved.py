"""Saved codes ("my codes" on /me): the campaigns a shopper saved from their landing pages, by
visitor id. A saved campaign shows the shopper's own share code there if they have one, else its
base code, and links to its landing page (/c/{base}), where their entry is found again by the same
visitor cookie."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cloud.errors import not_found
from cloud.store.engine import SessionFactory
from cloud.store.models import Campaign, Participant, SavedCode

MAX_SAVED = 200  # per visitor: a list a person scrolls, not a store


def _rented(s: Any, base_code: str) -> Campaign:
    c = s.scalar(select(Campaign).where(Campaign.base_code == base_code, Campaign.released_at_ms.is_(None)))
    if c is None:
        raise not_found("unknown_code", f"no campaign answers to {base_code[:20]}",
                        f"没有与 {base_code[:20]} 对应的活动")
    return c


def save(sf: SessionFactory, visitor: str, base_code: str, now_ms: int) -> bool:
    """Save the rented campaign of `base_code` for `visitor`; True if it was new. Saving again is
    a no-op; past MAX_SAVED the oldest saved code makes room."""
    try:
        with sf.begin() as s:
            c = _rented(s, base_code)
            if s.scalar(select(SavedCode.id).where(SavedCode.visitor == visitor,
                                                   SavedCode.campaign_id == c.id)) is not None:
                return False
            held = s.scalars(select(SavedCode).where(SavedCode.visitor == visitor)
                             .order_by(SavedCode.created_at_ms.desc(), SavedCode.id.desc())).all()
            for old in held[MAX_SAVED - 1:]:
                s.delete(old)
            s.add(SavedCode(visitor=visitor, campaign_id=c.id, created_at_ms=now_ms))
            return True
    except IntegrityError:  # the same save from another tab won
        return False


def is_saved(sf: SessionFactory, visitor: str | None, campaign_id: int) -> bool:
    if not visitor:
        return False
    with sf() as s:
        return s.scalar(select(SavedCode.id).where(SavedCode.visitor == visitor,
                                                   SavedCode.campaign_id == campaign_id)) is not None


def list_for(sf: SessionFactory, visitors: str | Iterable[str], lang: str = "zh-CN") -> list[dict[str, Any]]:
    """The saved codes of one visitor id or of several (a person's phones), newest first, each as
    {"code", "url", "label", "base_code", "campaign_id", "saved_at_ms"}: the label in `lang`
    ("zh-CN" or "en"), the code the visitor's own share code in that campaign if they have one.
    Released campaigns are left out (their codes no longer answer)."""
    ids = [visitors] if isinstance(visitors, str) else list(visitors)
    if not ids:
        return []
    with sf() as s:
        rows = s.execute(select(SavedCode, Campaign).join(Campaign, SavedCode.campaign_id == Campaign.id)
                         .where(SavedCode.visitor.in_(ids), Campaign.released_at_ms.is_(None))
                         .order_by(SavedCode.created_at_ms.desc(), SavedCode.id.desc())).all()
        shares = {cid: code for cid, code in s.execute(  # the newest wins
            select(Participant.campaign_id, Participant.share_code)
            .where(Participant.visitor.in_(ids)).order_by(Participant.id))}
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for saved, c in rows:
        if c.id in seen:  # saved from two phones of one person
            continue
        seen.add(c.id)
        share = shares.get(c.id)
        out.append({"campaign_id": c.id, "base_code": c.base_code,
                    "code": f"{c.base_code}-{share}" if share else c.base_code,
                    "label": c.label_en if lang == "en" else c.label_zh,
                    "url": f"/c/{c.base_code}", "saved_at_ms": saved.created_at_ms})
    return out

"""Revocable read-only links to a merchant's dashboard (like Plausible's shared links).

The link carries its code after `#`, so it never reaches a server log, a proxy or a Referer:
/shared#<code>. The page posts the code once and gets a viewer session; revoking the link ends
every session it opened. Only the SHA-256 of a code is stored."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select

from cloud.errors import bad_request, not_found
from cloud.services.users import CODE_BYTES, code_hash
from cloud.store.engine import SessionFactory
from cloud.store.models import SharedLink

PATH = "/shared"


def create(sf: SessionFactory, merchant_id: int, label: str, now_ms: int) -> dict[str, Any]:
    """A new link; its code is shown only here."""
    if len(label) > 100:
        raise bad_request("bad_label", "a label has at most 100 characters", "标签最多 100 个字符")
    code = secrets.token_urlsafe(CODE_BYTES)
    with sf.begin() as s:
        link = SharedLink(merchant_id=merchant_id, token_hash=code_hash(code), label=label.strip(),
                          created_at_ms=now_ms)
        s.add(link)
        s.flush()
        return {"link_id": link.id, "label": link.label, "path": f"{PATH}#{code}"}


def list_for(sf: SessionFactory, merchant_id: int) -> list[dict[str, Any]]:
    with sf() as s:
        return [{"link_id": x.id, "label": x.label, "created_at_ms": x.created_at_ms,
                 "revoked": x.revoked_at_ms is not None}
                for x in s.scalars(select(SharedLink).where(SharedLink.merchant_id == merchant_id)
                                   .order_by(SharedLink.id))]


def revoke(sf: SessionFactory, merchant_id: int, link_id: int, now_ms: int) -> dict[str, Any]:
    with sf.begin() as s:
        x = s.get(SharedLink, link_id)
        if x is None or x.merchant_id != merchant_id:
            raise not_found("unknown_link", "no such link", "链接不存在")
        if x.revoked_at_ms is None:
            x.revoked_at_ms = now_ms
        return {"link_id": x.id, "revoked": True}


def find(sf: SessionFactory, code: str) -> SharedLink | None:
    """The live link of `code`, or None."""
    if not code or len(code) > 100:
        return None
    with sf() as s:
        x = s.scalar(select(SharedLink).where(SharedLink.token_hash == code_hash(code)))
        return x if x is not None and x.revoked_at_ms is None else None


def live(sf: SessionFactory, link_id: int) -> bool:
    with sf() as s:
        x = s.get(SharedLink, link_id)
        return x is not None and x.revoked_at_ms is None

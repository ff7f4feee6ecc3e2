"""Merchant page logins (网页登录): a merchant key posted once to /login becomes a short-lived
server-side session, so no key travels in a URL or stays in the browser.

Invariants:
- Only the SHA-256 of the session token is stored; the token (256 random bits) lives in the
  browser's HttpOnly cookie alone, so a copy of the table opens no session.
- Each session has its own CSRF token (synchronizer token), compared in constant time.
- A session ends at its expiry, at logout, or when the key it was opened with is revoked.
- Logins today are by merchant key; user_id is there for person logins (issue 14).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from cloud.errors import unauthorized
from cloud.services import auth
from cloud.store.engine import SessionFactory
from cloud.store.models import ApiKey, WebSession

TOKEN_BYTES = 32


@dataclass(frozen=True)
class PageSession:
    merchant_id: int
    role: str
    csrf_token: str
    expires_at_ms: int
    key_id: int | None = None
    user_id: int | None = None


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie, and nowhere else
    session: PageSession


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login_with_key(sf: SessionFactory, api_key: str, now_ms: int, ttl_s: int) -> NewSession:
    """A new session for the merchant of `api_key`; 401 for a wrong key, 403 for another role.
    Expired sessions are swept here, so the table holds at most one login period's sessions."""
    p = auth.principal_for(sf, api_key.strip())
    if p is None:
        raise unauthorized("wrong merchant key", "商户密钥错误")
    if p.role != auth.MERCHANT or p.merchant_id is None:
        raise auth.forbidden("this page needs a merchant key", "此页面需要商户密钥")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    ps = PageSession(merchant_id=p.merchant_id, role=p.role, csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
                     expires_at_ms=now_ms + ttl_s * 1000, key_id=p.key_id)
    with sf.begin() as s:
        s.execute(delete(WebSession).where(WebSession.expires_at_ms <= now_ms))
        s.add(WebSession(token_hash=hash_token(token), merchant_id=ps.merchant_id, role=ps.role,
                         user_id=None, key_id=ps.key_id, csrf_token=ps.csrf_token,
                         created_at_ms=now_ms, expires_at_ms=ps.expires_at_ms))
    return NewSession(token, ps)


def find(sf: SessionFactory, token: str, now_ms: int) -> PageSession | None:
    """The live session of `token`: None when unknown, expired, or its key was revoked."""
    if not token or len(token) > 100:
        return None
    with sf() as s:
        row = s.get(WebSession, hash_token(token))
        if row is None or row.expires_at_ms <= now_ms:
            return None
        if row.key_id is not None and s.scalar(select(ApiKey.revoked_at_ms).where(ApiKey.id == row.key_id)):
            return None
        return PageSession(row.merchant_id, row.role, row.csrf_token, row.expires_at_ms, row.key_id,
                           row.user_id)


def csrf_ok(session: PageSession, token: str) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf_token.encode(), token.encode())


def logout(sf: SessionFactory, token: str) -> None:
    with sf.begin() as s:
        s.execute(delete(WebSession).where(WebSession.token_hash == hash_token(token)))

"""Merchant page logins (网页登录): a merchant key posted once to /login becomes a short-lived
server-side session, so no key travels in a URL or stays in the browser.

Invariants:
- Only the SHA-256 of the session token is stored; the token (256 random bits) lives in the
  browser's HttpOnly cookie alone, so a copy of the table opens no session.
- Each session has its own CSRF token (synchronizer token), compared in constant time.
- A session ends at its expiry, at logout, or when the key it was opened with is revoked.
- Logins are by merchant key (role owner), by a user's password (cloud/services/users.py: owner,
  staff or viewer), or by a read-only shared link (viewer). A session also ends when its user is
  disabled or its link revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from cloud.errors import unauthorized
from cloud.services import auth, shared_links, users
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
    shared_link_id: int | None = None

    @property
    def console_role(self) -> str:
        """owner, staff or viewer: a merchant key's login is the owner's."""
        return users.OWNER if self.role == auth.MERCHANT else self.role


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie, and nowhere else
    session: PageSession


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _open(sf: SessionFactory, ps: PageSession, now_ms: int) -> NewSession:
    """Store a new session (only its token's hash); expired sessions are swept here, so the table
    holds at most one login period's sessions."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with sf.begin() as s:
        s.execute(delete(WebSession).where(WebSession.expires_at_ms <= now_ms))
        s.add(WebSession(token_hash=hash_token(token), merchant_id=ps.merchant_id, role=ps.role,
                         user_id=ps.user_id, key_id=ps.key_id, shared_link_id=ps.shared_link_id,
                         csrf_token=ps.csrf_token, created_at_ms=now_ms, expires_at_ms=ps.expires_at_ms))
    return NewSession(token, ps)


def login_with_key(sf: SessionFactory, api_key: str, now_ms: int, ttl_s: int) -> NewSession:
    """A new session for the merchant of `api_key`; 401 for a wrong key, 403 for another role."""
    p = auth.principal_for(sf, api_key.strip())
    if p is None:
        raise unauthorized("wrong merchant key", "商户密钥错误")
    if p.role != auth.MERCHANT or p.merchant_id is None:
        raise auth.forbidden("this page needs a merchant key", "此页面需要商户密钥")
    return _open(sf, PageSession(merchant_id=p.merchant_id, role=p.role,
                                 csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
                                 expires_at_ms=now_ms + ttl_s * 1000, key_id=p.key_id), now_ms)


def login_with_password(sf: SessionFactory, login: str, password: str, now_ms: int, ttl_s: int) -> NewSession:
    """A new session for the user with this login and password; 401 otherwise (the same answer for
    an unknown login, a wrong password and a disabled user)."""
    u = users.authenticate(sf, login, password)
    if u is None:
        raise unauthorized("wrong login or password", "登录名或密码错误")
    return _open(sf, PageSession(merchant_id=u.merchant_id, role=u.role,
                                 csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
                                 expires_at_ms=now_ms + ttl_s * 1000, user_id=u.id), now_ms)


def open_shared(sf: SessionFactory, code: str, now_ms: int, ttl_s: int) -> NewSession:
    """A viewer session from a read-only shared link's code; 401 for an unknown or revoked one."""
    link = shared_links.find(sf, code)
    if link is None:
        raise unauthorized("this link is unknown or was revoked", "此链接无效或已被撤销")
    return _open(sf, PageSession(merchant_id=link.merchant_id, role=users.VIEWER,
                                 csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
                                 expires_at_ms=now_ms + ttl_s * 1000, shared_link_id=link.id), now_ms)


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
        ps = PageSession(row.merchant_id, row.role, row.csrf_token, row.expires_at_ms, row.key_id,
                         row.user_id, row.shared_link_id)
    if ps.user_id is not None and not users.active(sf, ps.user_id):
        return None
    if ps.shared_link_id is not None and not shared_links.live(sf, ps.shared_link_id):
        return None
    return ps


def csrf_ok(session: PageSession, token: str) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf_token.encode(), token.encode())


def logout(sf: SessionFactory, token: str) -> None:
    with sf.begin() as s:
        s.execute(delete(WebSession).where(WebSession.token_hash == hash_token(token)))

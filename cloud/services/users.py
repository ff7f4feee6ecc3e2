"""People who sign in to the merchant console (商户后台): passwords hashed with argon2id
(argon2-cffi), one-time invitations, roles.

Roles: owner (the whole console), staff (the till only), viewer (reads the dashboard). A login
with a merchant API key counts as owner. Invitation codes and passwords are never stored: only
their SHA-256 (codes, 256 random bits) or argon2id hash (passwords)."""

from __future__ import annotations

import hashlib
import secrets
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from cloud.errors import ApiError, bad_request, conflict, not_found
from cloud.store.engine import SessionFactory
from cloud.store.models import Invite, Merchant, User

OWNER, STAFF, VIEWER = "owner", "staff", "viewer"
ROLES = (OWNER, STAFF, VIEWER)
MIN_PASSWORD = 12
MAX_PASSWORD = 200
INVITE_TTL_S = 7 * 24 * 3600
CODE_BYTES = 32


@cache
def _hasher() -> PasswordHasher:
    """argon2id with argon2-cffi's defaults (RFC 9106's second recommendation: 64 MiB, t=3)."""
    return PasswordHasher()


@cache
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _refused(code: str, en: str, zh: str) -> ApiError:
    return ApiError(401, code, en, zh)


def invite(sf: SessionFactory, merchant_id: int, role: str, now_ms: int,
           ttl_s: int = INVITE_TTL_S) -> dict[str, Any]:
    """A one-time invitation code for a new user of the merchant with `role`; shown only here."""
    if role not in ROLES:
        raise bad_request("bad_role", f"role must be one of {', '.join(ROLES)}",
                          "角色须为 owner、staff 或 viewer")
    code = secrets.token_urlsafe(CODE_BYTES)
    with sf.begin() as s:
        if s.get(Merchant, merchant_id) is None:
            raise not_found("unknown_merchant", "no such merchant", "商户不存在")
        s.add(Invite(token_hash=code_hash(code), merchant_id=merchant_id, role=role, created_at_ms=now_ms,
                     expires_at_ms=now_ms + ttl_s * 1000))
    return {"code": code, "merchant_id": merchant_id, "role": role, "expires_at_ms": now_ms + ttl_s * 1000}


def _check_new(login: str, password: str) -> str:
    name = login.strip().lower()
    if not 3 <= len(name) <= 100 or any(c.isspace() for c in name):
        raise bad_request("bad_login", "a login is 3 to 100 characters without spaces",
                          "登录名须为 3 至 100 个字符，不含空格")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise bad_request("weak_password", f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters",
                          f"密码须为 {MIN_PASSWORD} 至 {MAX_PASSWORD} 个字符")
    return name


def accept(sf: SessionFactory, code: str, login: str, password: str, now_ms: int) -> User:
    """The invited person chooses a login and a password; the code is then spent."""
    name = _check_new(login, password)
    pw_hash = _hasher().hash(password)  # before the transaction: it takes tens of milliseconds
    with sf.begin() as s:
        inv = s.get(Invite, code_hash(code), with_for_update=True) if code else None
        if inv is None or inv.used_at_ms is not None or inv.expires_at_ms <= now_ms:
            raise _refused("bad_invite", "this invitation is unknown, used or expired: ask for a new one",
                           "邀请码无效、已使用或已过期，请索取新的邀请")
        if s.scalar(select(User.id).where(User.login == name)) is not None:
            raise conflict("login_taken", "this login is taken: choose another", "该登录名已被使用，请另选")
        user = User(merchant_id=inv.merchant_id, login=name, password_hash=pw_hash, role=inv.role,
                    created_at_ms=now_ms)
        s.add(user)
        s.flush()
        inv.used_at_ms, inv.user_id = now_ms, user.id
        s.expunge(user)
    return user


def authenticate(sf: SessionFactory, login: str, password: str) -> User | None:
    """The user whose password this is, or None. A missing login costs a hash too, so the answer's
    time does not say which logins exist."""
    with sf() as s:
        user = s.scalar(select(User).where(User.login == login.strip().lower()))
    try:
        _hasher().verify(user.password_hash if user is not None else _dummy_hash(), password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at_ms is not None:
        return None
    return user


def active(sf: SessionFactory, user_id: int) -> bool:
    with sf() as s:
        u = s.get(User, user_id)
        return u is not None and u.disabled_at_ms is None


def list_users(sf: SessionFactory, merchant_id: int) -> list[dict[str, Any]]:
    with sf() as s:
        return [{"user_id": u.id, "login": u.login, "role": u.role, "created_at_ms": u.created_at_ms,
                 "disabled": u.disabled_at_ms is not None}
                for u in s.scalars(select(User).where(User.merchant_id == merchant_id).order_by(User.id))]


def disable(sf: SessionFactory, merchant_id: int, login: str, now_ms: int) -> dict[str, Any]:
    """Disables a user of the merchant at once: their sessions end at their next request."""
    with sf.begin() as s:
        u = s.scalar(select(User).where(User.login == login.strip().lower(), User.merchant_id == merchant_id))
        if u is None:
            raise not_found("unknown_user", "no such user for this merchant", "该商户没有此用户")
        if u.disabled_at_ms is None:
            u.disabled_at_ms = now_ms
        return {"user_id": u.id, "login": u.login, "disabled": True}

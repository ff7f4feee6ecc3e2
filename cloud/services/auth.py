"""API keys and roles. A key has one role; every role but admin belongs to one merchant (tenant),
and every object a non-admin asks for is looked up inside that tenant: another tenant's object is
"not found", exactly like one that does not exist, so ids leak nothing.

Roles:
- admin: provisions merchants and gateways, may act on any tenant (the bootstrap admin key comes
  from the settings, MCODE_CLOUD_ADMIN_KEY, at least 32 characters; more admin keys can be issued,
  each 46 characters, 256 random bits).
- merchant: everything in its tenant: campaigns, locations, devices, keys, orders, ledger.
- technician: reads campaigns and locations, registers devices (rotating displays only: printed
  codes are the merchant's call) and gets each one's key once, at registration.
- gateway: reads the command keys of its merchant's devices (GET /gateway/devices).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from cloud.errors import ApiError, bad_request, not_found, unauthorized
from cloud.settings import ADMIN_KEY_MIN_LEN
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import ApiKey, Gateway, Merchant

ADMIN = "admin"
MERCHANT = "merchant"
TECHNICIAN = "technician"
GATEWAY = "gateway"
ROLES = (ADMIN, MERCHANT, TECHNICIAN, GATEWAY)
KEY_PREFIX = {ADMIN: "ak_", MERCHANT: "mk_", TECHNICIAN: "tk_", GATEWAY: "gk_"}


@dataclass(frozen=True)
class Principal:
    role: str
    merchant_id: int | None  # None only for admin
    key_id: int | None = None  # None for the bootstrap admin key
    gateway_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def hash_key(api_key: str) -> str:
    """API keys are 256-bit random tokens, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def forbidden(message: str = "this key's role may not do that",
              message_zh: str = "该密钥的角色无权执行此操作") -> ApiError:
    return ApiError(403, "forbidden", message, message_zh)


def issue_key(sf: SessionFactory, role: str, merchant_id: int | None, label: str = "",
              gateway_id: str | None = None) -> dict[str, object]:
    """A new key; the key itself is returned only here."""
    if role not in ROLES:
        raise bad_request("bad_role", f"role must be one of {', '.join(ROLES)}", "角色无效")
    if (role == ADMIN) != (merchant_id is None):
        raise bad_request("bad_role", "admin keys have no merchant; every other role has one",
                          "管理员密钥不属于商户；其他角色必须属于一个商户")
    if (role == GATEWAY) != (gateway_id is not None):
        raise bad_request("bad_gateway_id", "gateway keys, and only they, name a gateway",
                          "只有网关密钥须指定网关")
    key = KEY_PREFIX[role] + secrets.token_urlsafe(32)
    with sf.begin() as s:
        if merchant_id is not None and s.get(Merchant, merchant_id) is None:
            raise not_found("unknown_merchant", "no such merchant", "商户不存在")
        if gateway_id is not None:
            gw = s.get(Gateway, gateway_id)
            if gw is None or gw.merchant_id != merchant_id:
                raise not_found("unknown_gateway", "no such gateway in this tenant", "该商户下没有此网关")
        row = ApiKey(key_hash=hash_key(key), role=role, merchant_id=merchant_id, gateway_id=gateway_id,
                     label=label[:200], created_at_ms=now_ms())
        s.add(row)
        s.flush()
        return {"key_id": row.id, "role": role, "merchant_id": merchant_id, "gateway_id": gateway_id,
                "label": row.label, "api_key": key}


def principal_for(sf: SessionFactory, key: str, admin_key: str = "") -> Principal | None:
    if not key:
        return None
    # a short bootstrap key is refused at startup (Settings.check); never accepted here either
    if len(admin_key) >= ADMIN_KEY_MIN_LEN and hmac.compare_digest(key.encode(), admin_key.encode()):
        return Principal(ADMIN, None)
    with sf() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key),
                                            ApiKey.revoked_at_ms.is_(None)))
    if row is None:
        return None
    return Principal(row.role, row.merchant_id, row.id, row.gateway_id)


def require(p: Principal | None, *roles: str) -> Principal:
    """`p` if its role is one of `roles` (admin always passes), else 401/403."""
    if p is None:
        raise unauthorized()
    if p.role != ADMIN and p.role not in roles:
        raise forbidden()
    return p


def tenant(p: Principal, merchant_id: int | None = None) -> int:
    """The tenant `p` acts on: its own (naming another is refused); an admin must name one."""
    if p.merchant_id is not None:
        if merchant_id is not None and merchant_id != p.merchant_id:
            raise forbidden("a key acts only on its own merchant", "密钥只能操作其所属商户")
        return p.merchant_id
    if merchant_id is None:
        raise bad_request("merchant_required", "an admin key must say which merchant (merchant_id)",
                          "管理员密钥须指定商户（merchant_id）")
    return merchant_id


def sees(p: Principal, merchant_id: int | None) -> bool:
    """May `p` see an object of tenant `merchant_id`?"""
    return p.is_admin or (merchant_id is not None and merchant_id == p.merchant_id)


def list_keys(sf: SessionFactory, merchant_id: int) -> list[dict[str, object]]:
    with sf() as s:
        rows = s.scalars(select(ApiKey).where(ApiKey.merchant_id == merchant_id).order_by(ApiKey.id))
        return [{"key_id": r.id, "role": r.role, "label": r.label, "gateway_id": r.gateway_id,
                 "created_at_ms": r.created_at_ms, "revoked_at_ms": r.revoked_at_ms} for r in rows]


def revoke_key(sf: SessionFactory, p: Principal, key_id: int) -> dict[str, object]:
    with sf.begin() as s:
        row = s.get(ApiKey, key_id)
        if row is None or not sees(p, row.merchant_id):
            raise not_found("unknown_key", "no such key", "密钥不存在")
        if row.revoked_at_ms is None:
            row.revoked_at_ms = now_ms()
        return {"key_id": row.id, "revoked_at_ms": row.revoked_at_ms}

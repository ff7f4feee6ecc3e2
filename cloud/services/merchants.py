"""Merchants (酬商): the tenants, each made with its first merchant key."""

from __future__ import annotations

import secrets
from typing import Any

from cloud.errors import bad_request
from cloud.services.auth import MERCHANT, hash_key
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import ApiKey, Merchant


def create_merchant(sf: SessionFactory, name: str) -> dict[str, Any]:
    """Returns {"merchant_id", "name", "api_key"}: the tenant and its first merchant key, shown
    only here."""
    if not name.strip():
        raise bad_request("bad_name", "merchant name is empty", "商户名称为空")
    api_key = "mk_" + secrets.token_urlsafe(32)
    with sf.begin() as s:
        m = Merchant(name=name.strip(), created_at_ms=now_ms())
        s.add(m)
        s.flush()
        s.add(ApiKey(key_hash=hash_key(api_key), role=MERCHANT, merchant_id=m.id, label="first key",
                     created_at_ms=now_ms()))
        return {"merchant_id": m.id, "name": m.name, "api_key": api_key}


def find(sf: SessionFactory, merchant_id: int) -> Merchant | None:
    with sf() as s:
        return s.get(Merchant, merchant_id)

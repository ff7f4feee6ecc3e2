"""Gateway trust: revoke a gateway, rotate its key. The admin and the gateway's own merchant may do
either; a gateway of no merchant is the admin's alone. Another tenant's gateway is "no such gateway".

Revocation is final: every later batch of the gateway is quarantined as `gateway_revoked` (and
acked so, so it stops resending), and its gateway API keys are revoked with it. A gateway that is
to come back gets a new id. The broker user is the broker's business: delete it there too
(`mosquitto_ctrl ... dynsec deleteClient <gateway id>`), or it can still publish (to be refused).

Rotation installs a new public key at once. The previous key keeps verifying what was in flight:
batches received within `grace_s` of the rotation (default `GRACE_S`) and, if the operator names
it, with a bseq below `until_bseq` (the first bseq the gateway signs with its new key: `mcode
gateway status` shows the spool's next bseq). Nothing signed before the switch is lost; a thief
of the old key keeps at most the grace window and, with `until_bseq`, no bseq the gateway had
not yet used."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud.errors import bad_request, conflict, not_found
from cloud.services.auth import Principal, sees
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import ApiKey, Gateway
from protocol import batch as pbatch

GRACE_S = 24 * 3600  # a gateway offline for a day still delivers what it signed before the switch
MAX_GRACE_S = 30 * 24 * 3600


def raw_public_key(public_key_hex: str) -> bytes:
    """A raw Ed25519 public key from 64 hex digits; 400 otherwise."""
    try:
        raw = bytes.fromhex(public_key_hex.strip())
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise bad_request("bad_public_key", "public key must be a raw Ed25519 key, 32 bytes as hex",
                          "公钥须为 32 字节 Ed25519 原始公钥（十六进制）") from None
    return raw


def refusal(g: Gateway | None, gateway_id: str) -> tuple[str, str] | None:
    """Why nothing from gateway `gateway_id` (its row `g`, None if unknown) may be accepted:
    (reason, detail) for an unknown or revoked gateway, None for one in good standing. Delivery
    reports and statuses ask this before their own checks; batch ingest makes the same two checks
    inside its batched lookup (cloud/services/ingest.py, `_check_gateways`)."""
    if g is None:
        return "unknown_gateway", gateway_id
    if g.revoked_at_ms is not None:
        return "gateway_revoked", f"revoked at {g.revoked_at_ms} ms"
    return None


def trust_dict(g: Gateway) -> dict[str, Any]:
    return {"gateway_id": g.id, "public_key": g.public_key.hex(), "merchant_id": g.merchant_id,
            "revoked_at_ms": g.revoked_at_ms, "key_rotated_at_ms": g.key_rotated_at_ms,
            "previous_key_until_ms": g.prev_key_until_ms, "previous_key_until_bseq": g.prev_key_until_bseq}


def _own(s: Session, p: Principal | None, gateway_id: str) -> Gateway:
    g = s.get(Gateway, gateway_id.strip().lower(), with_for_update=True)
    if g is None or (p is not None and not sees(p, g.merchant_id)):
        raise not_found("unknown_gateway", "no such gateway", "网关不存在")
    return g


def revoke(sf: SessionFactory, gateway_id: str, as_: Principal | None = None) -> dict[str, Any]:
    """Revoke for good (again: a no-op that answers the first revocation's time)."""
    t = now_ms()
    with sf.begin() as s:
        g = _own(s, as_, gateway_id)
        if g.revoked_at_ms is None:
            g.revoked_at_ms = t
            g.prev_public_key = g.prev_key_until_ms = g.prev_key_until_bseq = None
            s.execute(update(ApiKey).where(ApiKey.gateway_id == g.id, ApiKey.revoked_at_ms.is_(None))
                      .values(revoked_at_ms=t))
        return trust_dict(g)


def rotate(sf: SessionFactory, gateway_id: str, public_key_hex: str, as_: Principal | None = None,
           grace_s: int = GRACE_S, until_bseq: int | None = None) -> dict[str, Any]:
    """Install a new key; the current one becomes the previous key for what is in flight."""
    raw = raw_public_key(public_key_hex)
    if not 0 <= grace_s <= MAX_GRACE_S:
        raise bad_request("bad_grace", f"grace_s must be in [0, {MAX_GRACE_S}]",
                          f"grace_s 须在 [0, {MAX_GRACE_S}] 内")
    if until_bseq is not None and not 0 <= until_bseq <= pbatch.MAX_BSEQ:
        raise bad_request("bad_bseq", "until_bseq must be a batch sequence number (0 .. 2^63-1)",
                          "until_bseq 须为批次序号（0 .. 2^63-1）")
    t = now_ms()
    with sf.begin() as s:
        g = _own(s, as_, gateway_id)
        if g.revoked_at_ms is not None:
            raise conflict("gateway_revoked", "this gateway is revoked; register a new one",
                           "该网关已吊销，请注册新网关")
        if raw == bytes(g.public_key):
            raise conflict("same_key", "that is already the gateway's key", "这已是该网关的公钥")
        g.prev_public_key, g.public_key = bytes(g.public_key), raw
        g.key_rotated_at_ms, g.prev_key_until_ms, g.prev_key_until_bseq = t, t + grace_s * 1000, until_bseq
        return trust_dict(g)


def list_trust(sf: SessionFactory, merchant_id: int | None) -> list[dict[str, Any]]:
    """Gateways with their trust state: one merchant's, or (None) every gateway."""
    with sf() as s:
        q = select(Gateway).order_by(Gateway.id)
        if merchant_id is not None:
            q = q.where(Gateway.merchant_id == merchant_id)
        return [trust_dict(g) for g in s.scalars(q)]

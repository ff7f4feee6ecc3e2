"""Provisioning services: merchants, campaigns, devices, gateways. The admin API calls these, and a
demo may call them in-process with a session factory."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cloud.db import SessionFactory, now_ms
from cloud.errors import bad_request, conflict, not_found
from cloud.models import Campaign, Device, Gateway, Merchant
from cloud.rules import RED_BALLOON, RULES
from protocol.keys import DEVICE_KEY_LEN, ID_LEN, gateway_key
from protocol.rotation import modulus

_HEX_ID = re.compile(r"^[0-9a-f]{16}$")
SHARE_CODE_DIGITS = 6  # personal share codes; a campaign's display digits must differ


def hash_key(api_key: str) -> str:
    """API keys are 256-bit random tokens, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def _hex_id(value: str, what: str) -> str:
    v = value.strip().lower()
    if not _HEX_ID.match(v):
        raise bad_request(f"bad_{what}_id", f"{what} id must be {ID_LEN} bytes as 16 hex digits",
                          f"{what} id 须为 16 位十六进制")
    return v


def create_merchant(sf: SessionFactory, name: str) -> dict[str, Any]:
    """Returns {"merchant_id", "name", "api_key"}; the key is shown only here."""
    if not name.strip():
        raise bad_request("bad_name", "merchant name is empty", "商户名称为空")
    api_key = "mk_" + secrets.token_urlsafe(32)
    with sf.begin() as s:
        m = Merchant(name=name.strip(), api_key_hash=hash_key(api_key), created_at_ms=now_ms())
        s.add(m)
        s.flush()
        return {"merchant_id": m.id, "name": m.name, "api_key": api_key}


def merchant_by_key(sf: SessionFactory, api_key: str) -> Merchant | None:
    if not api_key:
        return None
    with sf() as s:
        return s.scalar(select(Merchant).where(Merchant.api_key_hash == hash_key(api_key)))


def campaign_dict(c: Campaign) -> dict[str, Any]:
    return {"campaign_id": c.id, "merchant_id": c.merchant_id, "base_code": c.base_code, "slots": c.slots,
            "digits": c.digits, "period_s": c.period_s, "pool_minor": c.pool_minor, "rule": c.rule,
            "label": {"zh": c.label_zh, "en": c.label_en}}


def create_campaign(sf: SessionFactory, merchant_id: int, base_code: str, slots: int, digits: int,
                    period_s: int, pool_minor: int, label_zh: str, label_en: str,
                    rule: str = RED_BALLOON) -> dict[str, Any]:
    if not (base_code.isdigit() and base_code.isascii() and 1 <= len(base_code) <= 12):
        raise bad_request("bad_base_code", "base code must be 1 to 12 digits", "基础码须为 1 至 12 位数字")
    if not 1 <= digits <= 5:
        raise bad_request("bad_digits", "digits must be 1 to 5 (6 is kept for personal share codes)",
                          "动态码位数须为 1 至 5（6 位留给个人分享码）")
    try:
        modulus(slots, digits)
    except ValueError:
        raise bad_request("bad_slots", "slots must be >= 1 and leave at least 2 values per slot",
                          "槽位数须 ≥ 1，且每个槽位至少有 2 个取值") from None
    if period_s < 1:
        raise bad_request("bad_period", "period_s must be >= 1", "周期须 ≥ 1 秒")
    if pool_minor < 0:
        raise bad_request("bad_pool", "pool_minor must be >= 0", "酬金须 ≥ 0")
    if rule not in RULES:
        raise bad_request("bad_rule", f"unknown rule {rule!r}; known: {', '.join(RULES)}", "未知的酬众规则")
    try:
        with sf.begin() as s:
            if s.get(Merchant, merchant_id) is None:
                raise not_found("unknown_merchant", "no such merchant", "商户不存在")
            c = Campaign(merchant_id=merchant_id, base_code=base_code, slots=slots, digits=digits,
                         period_s=period_s, pool_minor=pool_minor, rule=rule, label_zh=label_zh,
                         label_en=label_en, created_at_ms=now_ms())
            s.add(c)
            s.flush()
            return campaign_dict(c)
    except IntegrityError:
        raise conflict("base_code_taken", f"base code {base_code} is already rented",
                       f"基础码 {base_code} 已被租用") from None


def device_config(d: Device, c: Campaign) -> dict[str, Any]:
    """What the firmware needs: the device key is in here, so show it only to the technician."""
    return {"device_id": d.id, "key": d.device_key.hex(), "base": c.base_code, "slot": d.slot,
            "slots": c.slots, "digits": c.digits, "period": c.period_s, "label": d.label,
            "name": "mc-" + d.id[-4:]}


def create_device(sf: SessionFactory, campaign_id: int, slot: int | None = None, label: str = "",
                  location: str = "", device_id: str | None = None) -> dict[str, Any]:
    """A new device with a fresh 32-byte key; returns its config JSON for flashing. Without a
    slot, takes the lowest free one; without an id, draws a random one."""
    dev_id = _hex_id(device_id, "device") if device_id else secrets.token_bytes(ID_LEN).hex()
    try:
        with sf.begin() as s:
            c = s.get(Campaign, campaign_id)
            if c is None:
                raise not_found("unknown_campaign", "no such campaign", "活动不存在")
            used = set(s.scalars(select(Device.slot).where(Device.campaign_id == c.id)))
            if slot is None:
                free = [i for i in range(c.slots) if i not in used]
                if not free:
                    raise conflict("no_free_slot", "every slot of this campaign is taken", "该活动的槽位已满")
                slot = free[0]
            if not 0 <= slot < c.slots:
                raise bad_request("bad_slot", f"slot must be in [0, {c.slots})",
                                  f"槽位须在 [0, {c.slots}) 内")
            if slot in used:
                raise conflict("slot_taken", f"slot {slot} is taken", f"槽位 {slot} 已被占用")
            d = Device(id=dev_id, device_key=secrets.token_bytes(DEVICE_KEY_LEN), campaign_id=c.id,
                       slot=slot, label=label, location=location, created_at_ms=now_ms())
            s.add(d)
            s.flush()
            return device_config(d, c)
    except IntegrityError:
        raise conflict("device_exists", f"device {dev_id} or its slot exists", "设备或槽位已存在") from None


def create_gateway(sf: SessionFactory, gateway_id: str, public_key_hex: str,
                   merchant_id: int | None = None, label: str = "") -> dict[str, Any]:
    """Registers a gateway's Ed25519 public key (raw 32 bytes, hex). With a merchant, the gateway
    gets command keys only for that merchant's devices."""
    gw_id = _hex_id(gateway_id, "gateway")
    try:
        raw = bytes.fromhex(public_key_hex.strip())
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise bad_request("bad_public_key", "public key must be a raw Ed25519 key, 32 bytes as hex",
                          "公钥须为 32 字节 Ed25519 原始公钥（十六进制）") from None
    try:
        with sf.begin() as s:
            if merchant_id is not None and s.get(Merchant, merchant_id) is None:
                raise not_found("unknown_merchant", "no such merchant", "商户不存在")
            s.add(Gateway(id=gw_id, public_key=raw, merchant_id=merchant_id, label=label,
                          created_at_ms=now_ms()))
    except IntegrityError:
        raise conflict("gateway_exists", f"gateway {gw_id} exists", f"网关 {gw_id} 已存在") from None
    return {"gateway_id": gw_id, "public_key": raw.hex(), "merchant_id": merchant_id, "label": label}


def gateway_device_keys(sf: SessionFactory, gateway_id: str) -> list[dict[str, Any]]:
    """Per device, the gateway's command key HMAC(K, "mcode/v0/gateway/" || gw): never the
    device key itself."""
    gw_id = _hex_id(gateway_id, "gateway")
    with sf() as s:
        gw = s.get(Gateway, gw_id)
        if gw is None:
            raise not_found("unknown_gateway", "no such gateway", "网关不存在")
        q = select(Device, Campaign).join(Campaign, Device.campaign_id == Campaign.id).order_by(Device.id)
        if gw.merchant_id is not None:
            q = q.where(Campaign.merchant_id == gw.merchant_id)
        gw_raw = bytes.fromhex(gw_id)
        return [{"device_id": d.id, "base": c.base_code, "slot": d.slot, "label": d.label,
                 "gateway_key": gateway_key(d.device_key, gw_raw).hex()}
                for d, c in s.execute(q).all()]

"""Provisioning services: merchants, campaigns, devices, gateways. The admin API calls these, and a
demo may call them in-process with a session factory."""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.errors import bad_request, conflict, not_found
from cloud.services.auth import MERCHANT, Principal, forbidden, sees
from cloud.services.gateway_trust import raw_public_key
from cloud.store import vault
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import Campaign, Device, Entry, Event, Gateway, Location, Merchant
from protocol.keys import DEVICE_KEY_LEN, ID_LEN, gateway_key
from protocol.rotation import format_code

log = logging.getLogger(__name__)
_HEX_ID = re.compile(r"^[0-9a-f]{16}$")
REKEY_WINDOW_MS = 24 * 3600 * 1000  # an unused device may be given a new key this long after registering
SHARE_CODE_DIGITS = 6  # personal share codes; a campaign's display digits must differ


def _hex_id(value: str, what: str) -> str:
    v = value.strip().lower()
    if not _HEX_ID.match(v):
        raise bad_request(f"bad_{what}_id", f"{what} id must be {ID_LEN} bytes as 16 hex digits",
                          f"{what} id 须为 16 位十六进制")
    return v


def printed_code(d: Device, c: Campaign) -> str | None:
    """The fixed code of a printed device (r = 0 in its slot), None for a display."""
    return format_code(c.base_code, d.slot, c.digits) if d.printed else None


def device_config(d: Device, c: Campaign, key: bytes) -> dict[str, Any]:
    """What the firmware needs, its root key included: built only when a key is drawn (provisioning),
    never from a stored one."""
    cfg = {"device_id": d.id, "key": key.hex(), "base": c.base_code, "slot": d.slot,
           "slots": c.slots, "digits": c.digits, "period": c.period_s, "label": d.label,
           "name": "mc-" + d.id[-4:]}
    if d.printed:
        cfg.update(printed=True, code=printed_code(d, c))
    return cfg


def _no_campaign() -> Exception:
    return not_found("unknown_campaign", "no such campaign", "活动不存在")


def _audit(what: str, p: Principal | None, d: Device, key_id: str) -> None:
    """The audit line of a key shown: who, which device, which master key sealed it; never the key."""
    who = "in-process" if p is None else f"{p.role} key {p.key_id if p.key_id is not None else 'bootstrap'}"
    log.info("device key %s: device %s, by %s, sealed under master key %s", what, d.id, who, key_id)


def _check_may_create(p: Principal | None, device_id: str | None, printed: bool) -> None:
    """Tenants' devices get ids the cloud draws: an id a caller chooses would answer "exists" for
    another tenant's device (an existence oracle). Printed codes never rotate, so they prove
    nothing about presence: only the merchant (or an admin) decides to print one."""
    if p is None or p.is_admin:
        return
    if device_id is not None:
        raise bad_request("device_id_not_allowed", "device ids are drawn by the cloud",
                          "设备 id 由云端生成，不能指定")
    if printed and p.role != MERCHANT:
        raise forbidden("only a merchant key may create a printed code", "只有商户密钥可以创建印刷码")


def create_device(sf: SessionFactory, campaign_id: int, slot: int | None = None, label: str = "",
                  location: str = "", device_id: str | None = None, location_id: int | None = None,
                  board: str = "", printed: bool = False, as_: Principal | None = None) -> dict[str, Any]:
    """A new device with a fresh 32-byte key, stored sealed; returns its config JSON for flashing,
    the only time the key is shown. Without a slot, takes the lowest free one; without an id,
    draws a random one (only an admin or an in-process caller may name one). With `as_`, the
    campaign (and location) must be in that key's tenant."""
    _check_may_create(as_, device_id, printed)
    dev_id = _hex_id(device_id, "device") if device_id else secrets.token_bytes(ID_LEN).hex()
    key = secrets.token_bytes(DEVICE_KEY_LEN)
    try:
        with sf.begin() as s:
            c = s.get(Campaign, campaign_id)
            if c is None or (as_ is not None and not sees(as_, c.merchant_id)) or c.released_at_ms:
                raise _no_campaign()
            if location_id is not None:
                loc = s.get(Location, location_id)
                if loc is None or loc.merchant_id != c.merchant_id:
                    raise not_found("unknown_location", "no such location", "位置不存在")
                location = location or loc.name
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
            v = vault.of(s)
            d = Device(id=dev_id, key_sealed=v.seal_device_key(dev_id, key), campaign_id=c.id,
                       slot=slot, label=label, location=location, location_id=location_id,
                       board=board[:64], printed=printed, created_at_ms=now_ms())
            s.add(d)
            s.flush()
            cfg = device_config(d, c, key)
        _audit("issued", as_, d, v.key_id)
        return cfg
    except IntegrityError:
        raise conflict("device_exists", f"device {dev_id} or its slot exists", "设备或槽位已存在") from None


def create_gateway(sf: SessionFactory, gateway_id: str, public_key_hex: str,
                   merchant_id: int | None = None, label: str = "") -> dict[str, Any]:
    """Registers a gateway's Ed25519 public key (raw 32 bytes, hex). With a merchant, the gateway
    gets command keys only for that merchant's devices."""
    gw_id = _hex_id(gateway_id, "gateway")
    raw = raw_public_key(public_key_hex)
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
        gw_raw, v = bytes.fromhex(gw_id), vault.of(s)
        return [{"device_id": d.id, "base": c.base_code, "slot": d.slot, "label": d.label,
                 "gateway_key": gateway_key(v.open_device_key(d.id, d.key_sealed), gw_raw).hex()}
                for d, c in s.execute(q).all()]


def device_dict(d: Device, c: Campaign) -> dict[str, Any]:
    """A device as merchants and technicians list it: no key."""
    return {"device_id": d.id, "campaign_id": c.id, "base_code": c.base_code, "slot": d.slot,
            "label": d.label, "location": d.location, "location_id": d.location_id, "board": d.board,
            "printed": d.printed, "code": printed_code(d, c), "installed_at_ms": d.installed_at_ms}


def list_devices(sf: SessionFactory, merchant_id: int) -> list[dict[str, Any]]:
    with sf() as s:
        q = (select(Device, Campaign).join(Campaign, Device.campaign_id == Campaign.id)
             .where(Campaign.merchant_id == merchant_id).order_by(Campaign.id, Device.slot))
        return [device_dict(d, c) for d, c in s.execute(q).all()]


def _device_of(s: Session, p: Principal, device_id: str) -> tuple[Device, Campaign]:
    row = s.execute(select(Device, Campaign).join(Campaign, Device.campaign_id == Campaign.id)
                    .where(Device.id == device_id.lower())).first()
    if row is None or not sees(p, row[1].merchant_id):
        raise not_found("unknown_device", "no such device", "设备不存在")
    return row[0], row[1]


def get_device(sf: SessionFactory, p: Principal, device_id: str) -> dict[str, Any]:
    """One device of `p`'s tenant, without its key."""
    with sf() as s:
        return device_dict(*_device_of(s, p, device_id))


def rekey_device(sf: SessionFactory, p: Principal, device_id: str) -> dict[str, Any]:
    """Provision a registered device again, with a new key: for a technician whose flashing failed
    after registering (a pulled cable). A stored key is never shown again; this draws a new one, and
    only for a device that has not yet been in use (no event, no entry) and was registered within
    REKEY_WINDOW_MS, so it cannot silently cut off a device in service."""
    key = secrets.token_bytes(DEVICE_KEY_LEN)
    with sf.begin() as s:
        d, c = _device_of(s, p, device_id)
        used = (s.scalar(select(Event.id).where(Event.device_id == d.id).limit(1)) is not None
                or s.scalar(select(Entry.id).where(Entry.device_id == d.id).limit(1)) is not None)
        if used or now_ms() - d.created_at_ms > REKEY_WINDOW_MS:  # created_at_ms is wall-clock too
            raise conflict("device_in_service",
                           "this device has been in use (or was registered over 24 h ago): its key is not "
                           "shown or replaced; register a new device instead",
                           "该设备已投入使用（或注册已超过 24 小时）：其密钥不再显示或更换；请注册新设备")
        v = vault.of(s)
        d.key_sealed = v.seal_device_key(d.id, key)
        cfg = device_config(d, c, key)
    _audit("reissued", p, d, v.key_id)
    return cfg


def list_gateways(sf: SessionFactory, merchant_id: int) -> list[dict[str, Any]]:
    with sf() as s:
        gws = s.scalars(select(Gateway).where(Gateway.merchant_id == merchant_id).order_by(Gateway.id))
        return [{"gateway_id": g.id, "public_key": g.public_key.hex(), "merchant_id": g.merchant_id,
                 "label": g.label} for g in gws]


def install_device(sf: SessionFactory, p: Principal, device_id: str, location_id: int,
                   now_ms_: int) -> dict[str, Any]:
    """A technician marks a device installed at one of its tenant's locations (again moves it)."""
    with sf.begin() as s:
        d = s.get(Device, device_id.strip().lower())
        c = s.get(Campaign, d.campaign_id) if d is not None else None
        if d is None or c is None or not sees(p, c.merchant_id):
            raise not_found("unknown_device", "no such device", "设备不存在")
        loc = s.get(Location, location_id)
        if loc is None or loc.merchant_id != c.merchant_id:
            raise not_found("unknown_location", "no such location", "位置不存在")
        d.location_id, d.location, d.installed_at_ms = loc.id, loc.name, now_ms_
        return device_dict(d, c)

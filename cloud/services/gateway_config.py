"""Config down, reports up: what the cloud tells each gateway and what the gateway says back.

- `seal_device_config`: a new configuration write for a device (protocol/devconfig.py), sealed
  with its config key; only the cloud can make one (it alone holds device keys).
- `build_config`: a gateway's config (protocol/gwconfig.py) from the database, its allowlist with
  the gateway's command key per device and each device's latest write, plus firmware targets,
  signed with the cloud's key (cloud/services/signing_key.py). Versions rise by one per signed
  config. cloud/mqtt/config_publisher.py publishes it retained, QoS 1, on mcode/v0/gw/<gw>/config.
- `store_report`: the gateways' signed delivery reports (mcode/v0/gw/+/report), verified with the
  gateway's key and stored per (gateway, device, write version); cloud/mqtt/report_listener.py
  feeds it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select

from cloud.errors import bad_request, not_found
from cloud.services import gateway_trust
from cloud.services.provision import gateway_device_keys
from cloud.store import vault
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import (
    Campaign,
    Device,
    DeviceConfigResult,
    DeviceConfigWrite,
    Gateway,
    GatewayConfigRow,
)
from protocol import devconfig, gwconfig, keys
from protocol.hmac256 import HmacKey

log = logging.getLogger(__name__)



# -- device configuration writes -----------------------------------------------------------------

def seal_device_config(sf: SessionFactory, device_id: str, tx_power: int = 0,
                       label: str | None = None) -> dict[str, Any]:
    """Seal the device's current campaign settings (base, slot, slots, digits, period), its label
    and `tx_power` as a new write, one version above its last. It reaches the device through the
    next config pushed to its gateway."""
    dev_id = device_id.strip().lower()
    with sf.begin() as s:
        d = s.get(Device, dev_id)
        if d is None:
            raise not_found("unknown_device", "no such device", "设备不存在")
        c = s.get(Campaign, d.campaign_id)
        assert c is not None
        if label is not None:
            d.label = label
        prev = s.get(DeviceConfigWrite, dev_id, with_for_update=True)
        version = 1 if prev is None else prev.version + 1
        st = devconfig.Settings(version, c.base_code, d.slot, c.slots, c.digits, c.period_s, d.label,
                                tx_power)
        if not devconfig.valid(st):
            raise bad_request("bad_device_config",
                              "these settings would not make a working display (label at most "
                              f"{devconfig.MAX_LABEL} bytes, base at most {devconfig.MAX_BASE} digits, "
                              f"TX power {devconfig.TX_MIN}..{devconfig.TX_MAX} dBm)",
                              "该配置无法在显示屏上使用")
        root = vault.of(s).open_device_key(d.id, d.key_sealed)
        blob = devconfig.seal(HmacKey(keys.config_key(root)), bytes.fromhex(dev_id), st)
        if prev is None:
            s.add(DeviceConfigWrite(device_id=dev_id, version=version, blob=blob, created_at_ms=now_ms()))
        else:
            prev.version, prev.blob, prev.created_at_ms = version, blob, now_ms()
    log.info("device %s: config write v%d sealed", dev_id, version)
    return {"device_id": dev_id, "version": version, "bytes": len(blob)}


# -- gateway configs -----------------------------------------------------------------------------

def build_config(sf: SessionFactory, gateway_id: str, key: Ed25519PrivateKey,
                 firmware: dict[str, int] | None = None,
                 clock: Callable[[], int] = now_ms) -> tuple[gwconfig.GwConfig, bytes]:
    """Sign the gateway's next config and keep it as its latest. `firmware` replaces the targets;
    None keeps the last ones."""
    devs = gateway_device_keys(sf, gateway_id)  # validates the id; command keys, never device keys
    gw_id = gateway_id.strip().lower()
    with sf.begin() as s:
        writes = {w.device_id: w.blob for w in s.scalars(
            select(DeviceConfigWrite).where(DeviceConfigWrite.device_id.in_([d["device_id"] for d in devs])))}
        row = s.get(GatewayConfigRow, gw_id, with_for_update=True)
        fw = dict(firmware) if firmware is not None else (json.loads(row.firmware_json) if row else {})
        version = 1 if row is None else row.version + 1
        cfg = gwconfig.GwConfig(bytes.fromhex(gw_id), version, clock(), tuple(
            gwconfig.DeviceEntry(bytes.fromhex(d["device_id"]), bytes.fromhex(d["gateway_key"]),
                           writes.get(d["device_id"])) for d in devs), fw)
        try:
            payload = gwconfig.sign(cfg, key)
        except gwconfig.GwConfigError as e:
            raise bad_request("bad_gateway_config", str(e), "网关配置无效") from None
        if row is None:
            s.add(GatewayConfigRow(gateway_id=gw_id, version=version, issued_at_ms=cfg.issued_at_ms,
                                   payload=payload, firmware_json=json.dumps(fw)))
        else:
            row.version, row.issued_at_ms, row.payload = version, cfg.issued_at_ms, payload
            row.firmware_json = json.dumps(fw)
    return cfg, payload


# -- delivery reports ----------------------------------------------------------------------------

def store_report(sf: SessionFactory, topic: str, payload: bytes) -> gwconfig.Report:
    """Verify a gateway's report (its key, its own topic) and store each result, newest wins.
    Raises GwConfigError with a reason for anything refused."""
    parts = topic.split("/")
    topic_gw = parts[3] if len(parts) == 5 and parts[4] == "report" else ""
    body, sig, rep = gwconfig.open_report(payload)
    gw_hex = rep.gateway_id.hex()
    if gw_hex != topic_gw:
        raise gwconfig.GwConfigError("wrong_gateway", f"report for {gw_hex} on {topic}")
    with sf.begin() as s:
        gw = s.get(Gateway, gw_hex)
        why = gateway_trust.refusal(gw, gw_hex)  # unknown or revoked, as for its batches
        if why is not None or gw is None:
            raise gwconfig.GwConfigError(*(why or ("unknown_gateway", gw_hex)))
        gw_key = Ed25519PublicKey.from_public_bytes(gw.public_key)
        if not gwconfig.verify(body, sig, gw_key, gwconfig.REPORT_CONTEXT):
            raise gwconfig.GwConfigError("bad_signature", gw_hex)
        row = s.get(GatewayConfigRow, gw_hex)
        if row is not None and (row.reported_at_ms or 0) > rep.ts_ms:
            return rep  # an older report arriving late: the stored one is newer
        if row is not None:
            row.applied_version, row.refused, row.reported_at_ms = rep.applied_version, rep.refused, rep.ts_ms
        for r in rep.results:
            dev = r.device_id.hex()
            old = s.scalar(select(DeviceConfigResult).where(
                DeviceConfigResult.gateway_id == gw_hex, DeviceConfigResult.device_id == dev,
                DeviceConfigResult.version == r.version))
            if old is None:
                s.add(DeviceConfigResult(gateway_id=gw_hex, device_id=dev, version=r.version, status=r.status,
                                         reason=r.reason, device_version=r.device_version,
                                         reported_at_ms=rep.ts_ms))
            elif old.reported_at_ms <= rep.ts_ms:
                old.status, old.reason, old.device_version = r.status, r.reason, r.device_version
                old.reported_at_ms = rep.ts_ms
    for r in rep.results:
        if r.status == gwconfig.REFUSED:
            log.error("gateway %s: device %s REFUSED config write v%d: %s (device at v%s)", gw_hex,
                      r.device_id.hex(), r.version, r.reason, r.device_version)
    log.info("gateway %s runs config v%d%s: %s", gw_hex, rep.applied_version,
             f", refused a newer one ({rep.refused})" if rep.refused else "",
             ", ".join(f"{r.device_id.hex()} v{r.version} {r.status}" for r in rep.results) or "no writes")
    return rep


def config_results(sf: SessionFactory, gateway_id: str) -> list[dict[str, Any]]:
    with sf() as s:
        rows = s.scalars(select(DeviceConfigResult).where(DeviceConfigResult.gateway_id == gateway_id)
                         .order_by(DeviceConfigResult.device_id, DeviceConfigResult.version))
        return [{"device_id": r.device_id, "version": r.version, "status": r.status, "reason": r.reason,
                 "device_version": r.device_version} for r in rows]

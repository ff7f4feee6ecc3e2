"""Config down, reports up: what the cloud tells each gateway and what the gateway says back.

- `seal_device_config`: a new configuration write for a device (protocol/devconfig.py), sealed
  with its config key; only the cloud can make one (it alone holds device keys).
- `build_config` / `publish_config`: a gateway's config (protocol/gwconfig.py) from the database,
  its allowlist with the gateway's command key per device and each device's latest write, plus
  firmware targets, signed with the cloud's key and published retained, QoS 1, on
  mcode/v0/gw/<gw>/config. Versions rise by one per signed config.
- `store_report` / `ReportListener`: the gateways' signed delivery reports (mcode/v0/gw/+/report),
  verified with the gateway's key and stored per (gateway, device, write version).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import select

from cloud.db import SessionFactory, now_ms
from cloud.errors import bad_request, not_found
from cloud.models import Campaign, Device, DeviceConfigResult, DeviceConfigWrite, Gateway, GatewayConfigRow
from cloud.provision import gateway_device_keys
from cloud.settings import Settings
from protocol import devconfig, keys
from protocol import gwconfig as pg
from protocol.hmac256 import HmacKey

log = logging.getLogger("mcode.cloud.gateway_config")

PUBLISH_WAIT_S = 10.0


# -- the cloud's config signing key --------------------------------------------------------------

def signing_key(path: str | Path) -> Ed25519PrivateKey:
    """The cloud's Ed25519 config key from a PEM file, made (mode 0600) if there is none yet."""
    p = Path(path)
    if p.exists():
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{p} is not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.touch(mode=0o600)
    tmp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    tmp.replace(p)
    log.info("made a new cloud config signing key in %s", p)
    return key


def public_hex(key: Ed25519PrivateKey) -> str:
    """What a gateway's gateway.toml carries as `cloud_public_key`."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


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
        blob = devconfig.seal(HmacKey(keys.config_key(d.device_key)), bytes.fromhex(dev_id), st)
        if prev is None:
            s.add(DeviceConfigWrite(device_id=dev_id, version=version, blob=blob, created_at_ms=now_ms()))
        else:
            prev.version, prev.blob, prev.created_at_ms = version, blob, now_ms()
    log.info("device %s: config write v%d sealed", dev_id, version)
    return {"device_id": dev_id, "version": version, "bytes": len(blob)}


# -- gateway configs -----------------------------------------------------------------------------

def build_config(sf: SessionFactory, gateway_id: str, key: Ed25519PrivateKey,
                 firmware: dict[str, int] | None = None,
                 clock: Callable[[], int] = now_ms) -> tuple[pg.GwConfig, bytes]:
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
        cfg = pg.GwConfig(bytes.fromhex(gw_id), version, clock(), tuple(
            pg.DeviceEntry(bytes.fromhex(d["device_id"]), bytes.fromhex(d["gateway_key"]),
                           writes.get(d["device_id"])) for d in devs), fw)
        try:
            payload = pg.sign(cfg, key)
        except pg.GwConfigError as e:
            raise bad_request("bad_gateway_config", str(e), "网关配置无效") from None
        if row is None:
            s.add(GatewayConfigRow(gateway_id=gw_id, version=version, issued_at_ms=cfg.issued_at_ms,
                                   payload=payload, firmware_json=json.dumps(fw)))
        else:
            row.version, row.issued_at_ms, row.payload = version, cfg.issued_at_ms, payload
            row.firmware_json = json.dumps(fw)
    return cfg, payload


def publish(settings: Settings, topic: str, payload: bytes, client_id: str) -> None:
    """One retained QoS 1 message, waited for until the broker's PUBACK."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(settings.broker_user, settings.broker_password)
    c.connect(settings.broker_host, settings.broker_port)
    c.loop_start()
    try:
        info = c.publish(topic, payload, qos=1, retain=True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish to {topic} refused: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(PUBLISH_WAIT_S)
        if not info.is_published():
            raise RuntimeError(f"no PUBACK for {topic} within {PUBLISH_WAIT_S} s")
    finally:
        c.disconnect()
        c.loop_stop()


def publish_config(sf: SessionFactory, settings: Settings, gateway_id: str,
                   firmware: dict[str, int] | None = None) -> dict[str, Any]:
    """Build, sign, store and publish the gateway's next config; a summary for the operator."""
    cfg, payload = build_config(sf, gateway_id, signing_key(settings.signing_key), firmware)
    gw_hex = cfg.gateway_id.hex()
    publish(settings, pg.config_topic(gw_hex), payload, f"mcode-cloud-config-{gw_hex}")
    writes = {d.id.hex(): d.config_version for d in cfg.devices if d.config is not None}
    log.info("gateway %s: config v%d published (%d devices, %d writes, %d bytes)", gw_hex, cfg.version,
             len(cfg.devices), len(writes), len(payload))
    return {"gateway_id": gw_hex, "version": cfg.version, "devices": len(cfg.devices), "writes": writes,
            "firmware": cfg.firmware, "bytes": len(payload)}


# -- delivery reports ----------------------------------------------------------------------------

def store_report(sf: SessionFactory, topic: str, payload: bytes) -> pg.Report:
    """Verify a gateway's report (its key, its own topic) and store each result, newest wins.
    Raises GwConfigError with a reason for anything refused."""
    parts = topic.split("/")
    topic_gw = parts[3] if len(parts) == 5 and parts[4] == "report" else ""
    body, sig, rep = pg.open_report(payload)
    gw_hex = rep.gateway_id.hex()
    if gw_hex != topic_gw:
        raise pg.GwConfigError("wrong_gateway", f"report for {gw_hex} on {topic}")
    with sf.begin() as s:
        gw = s.get(Gateway, gw_hex)
        if gw is None:
            raise pg.GwConfigError("unknown_gateway", gw_hex)
        if not pg.verify(body, sig, Ed25519PublicKey.from_public_bytes(gw.public_key), pg.REPORT_CONTEXT):
            raise pg.GwConfigError("bad_signature", gw_hex)
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
        if r.status == pg.REFUSED:
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


class ReportListener:
    """Stores every gateway's delivery reports as they arrive (user `cloud`, QoS 1)."""

    def __init__(self, sf: SessionFactory, host: str, port: int, user: str = "cloud", password: str = "",
                 client_id: str = "mcode-cloud-reports") -> None:
        self._sf = sf
        self._host, self._port = host, port
        self.stored = 0
        self.refused = 0
        self.subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self._client.username_pw_set(user, password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object, rc: ReasonCode,
                    _props: object) -> None:
        if rc.is_failure:
            log.error("broker refused the report listener: %s", rc)
            return
        client.subscribe(pg.REPORT_SUBSCRIPTION, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _ud: object, _mid: int, rcs: list[ReasonCode],
                      _props: object) -> None:
        if all(not rc.is_failure for rc in rcs):
            self.subscribed.set()
        else:
            log.error("report subscription refused: %s", rcs)

    def _on_message(self, _c: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        try:
            store_report(self._sf, msg.topic, bytes(msg.payload))
            self.stored += 1
        except pg.GwConfigError as e:
            self.refused += 1
            log.error("report on %s refused: %s", msg.topic, e)
        except Exception:  # the database: the next report (a full snapshot) makes it good
            self.refused += 1
            log.exception("report on %s not stored", msg.topic)

    def start(self) -> ReportListener:
        self._client.connect_async(self._host, self._port)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

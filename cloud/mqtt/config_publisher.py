"""Publishes a gateway's signed config, retained, QoS 1, on mcode/v0/gw/<gw>/config
(cloud/services/gateway_config.py builds and signs it)."""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from cloud.mqtt import identity
from cloud.mqtt.client import connect, make_client
from cloud.services.gateway_config import build_config
from cloud.services.signing_key import signing_key
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from protocol import gwconfig

log = logging.getLogger(__name__)

PUBLISH_WAIT_S = 10.0


def publish(settings: Settings, topic: str, payload: bytes) -> None:
    """One retained QoS 1 message, waited for until the broker's PUBACK. The publisher has one
    client id (identity.CONFIG): two processes publishing at once close each other's connection,
    and paho reconnects and resends; a publish without a PUBACK within PUBLISH_WAIT_S raises."""
    c = make_client(settings, identity.CONFIG)
    connect(c, settings)
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
    publish(settings, gwconfig.config_topic(gw_hex), payload)
    writes = {d.id.hex(): d.config_version for d in cfg.devices if d.config is not None}
    log.info("gateway %s: config v%d published (%d devices, %d writes, %d bytes)", gw_hex, cfg.version,
             len(cfg.devices), len(writes), len(payload))
    return {"gateway_id": gw_hex, "version": cfg.version, "devices": len(cfg.devices), "writes": writes,
            "firmware": cfg.firmware, "bytes": len(payload)}

"""Listens for the gateways' retained status (mcode/v0/gw/+/status, protocol.health) and stores
each through cloud/services/gateway_status.py `store_status`: the dashboard's device health."""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from cloud.mqtt import identity
from cloud.mqtt.client import connect, make_client
from cloud.services.gateway_status import SUBSCRIPTION, StatusRefused, store_status
from cloud.settings import Settings
from cloud.store.engine import SessionFactory

log = logging.getLogger(__name__)


class StatusListener:
    """Stores every gateway's status as it arrives (user `<broker user>-status`, QoS 1). On each
    (re)connect the broker hands over every gateway's retained status, so a listener that was away
    catches up at once."""

    def __init__(self, sf: SessionFactory, settings: Settings) -> None:
        self._sf = sf
        self._settings = settings
        self.stored = 0
        self.refused = 0
        self.last_refusal = ""
        self.subscribed = threading.Event()
        self._client = make_client(settings, identity.STATUS)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object, rc: ReasonCode,
                    _props: object) -> None:
        if rc.is_failure:
            log.error("broker refused the status listener: %s", rc)
            return
        client.subscribe(SUBSCRIPTION, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _ud: object, _mid: int, rcs: list[ReasonCode],
                      _props: object) -> None:
        if all(not rc.is_failure for rc in rcs):
            self.subscribed.set()
        else:
            log.error("status subscription refused: %s", rcs)

    def _on_message(self, _c: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        try:
            store_status(self._sf, msg.topic, bytes(msg.payload))
            self.stored += 1
        except StatusRefused as e:
            self.refused += 1
            self.last_refusal = e.reason
            log.error("status on %s refused: %s", msg.topic, e)
        except Exception:  # the database: the gateway's next status (every 30 s) makes it good
            self.refused += 1
            self.last_refusal = "not_stored"
            log.exception("status on %s not stored", msg.topic)

    def start(self) -> StatusListener:
        connect(self._client, self._settings, wait=False)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

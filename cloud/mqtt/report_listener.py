"""Listens for the gateways' signed delivery reports (mcode/v0/gw/+/report) and stores each
through cloud/services/gateway_config.py `store_report`."""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from cloud.mqtt import identity
from cloud.mqtt.client import connect, make_client
from cloud.services.gateway_config import store_report
from cloud.settings import Settings
from cloud.store.engine import SessionFactory
from protocol import gwconfig

log = logging.getLogger(__name__)


class ReportListener:
    """Stores every gateway's delivery reports as they arrive (user `<broker user>-reports`, QoS 1)."""

    def __init__(self, sf: SessionFactory, settings: Settings) -> None:
        self._sf = sf
        self._settings = settings
        self.stored = 0
        self.refused = 0
        self.subscribed = threading.Event()
        self._client = make_client(settings, identity.REPORTS)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object, rc: ReasonCode,
                    _props: object) -> None:
        if rc.is_failure:
            log.error("broker refused the report listener: %s", rc)
            return
        client.subscribe(gwconfig.REPORT_SUBSCRIPTION, qos=1)

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
        except gwconfig.GwConfigError as e:
            self.refused += 1
            log.error("report on %s refused: %s", msg.topic, e)
        except Exception:  # the database: the next report (a full snapshot) makes it good
            self.refused += 1
            log.exception("report on %s not stored", msg.topic)

    def start(self) -> ReportListener:
        connect(self._client, self._settings, wait=False)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

"""The ingest worker: MQTT v5, QoS 1, user `cloud`. Messages are handled one at a time on a
thread of their own; each is committed, then acked to its gateway, then PUBACKed to the broker."""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud.db import SessionFactory
from cloud.ingest import ingest
from protocol import batch as pb

log = logging.getLogger("mcode.cloud.worker")

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our subscription and queued batches this long


@dataclass
class IngestCounts:
    batches: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    quarantined: int = 0  # whole batches refused
    acks: int = 0
    errors: int = 0  # deliveries that raised (database trouble): not acked, the gateway resends


class IngestWorker:
    def __init__(self, session_factory: SessionFactory, host: str, port: int, user: str = "cloud",
                 password: str = "", client_id: str = "mcode-cloud-ingest",
                 subscription: str = pb.BATCH_SUBSCRIPTION) -> None:
        self._sf = session_factory
        self._host, self._port = host, port
        self._subscription = subscription
        self.counts = IngestCounts()
        self.subscribed = threading.Event()
        self._q: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=mqtt.MQTTv5, manual_ack=True)
        self._client.username_pw_set(user, password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # paho callbacks (network thread)
    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object, rc: object,
                    _props: object) -> None:
        if getattr(rc, "is_failure", False):
            log.error("broker refused the connection: %s", rc)
            return
        client.subscribe(self._subscription, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _ud: object, _mid: int, rcs: list[ReasonCode],
                      _props: Properties) -> None:
        if all(not rc.is_failure for rc in rcs):
            self.subscribed.set()
        else:
            log.error("subscription refused: %s", rcs)

    def _on_message(self, _c: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        self._q.put(msg)

    # processing thread
    def _run(self) -> None:
        while True:
            msg = self._q.get()
            if msg is None:
                return
            self.handle(msg.topic, bytes(msg.payload))
            try:  # PUBACK after the commit and the gateway's ack
                self._client.ack(msg.mid, msg.qos)
            except Exception:
                log.exception("PUBACK of mid %s failed", msg.mid)

    def handle(self, topic: str, payload: bytes) -> None:
        """Ingest one delivery and publish its ack. Never raises."""
        c = self.counts
        try:
            res = ingest(self._sf, topic, payload)
        except Exception:
            c.errors += 1
            log.exception("ingest failed on %s; not acked", topic)
            return
        c.batches += 1
        c.stored += res.stored
        c.duplicates += res.duplicates
        c.rejected += res.rejected
        if res.status == pb.ACK_QUARANTINED:
            c.quarantined += 1
            log.warning("quarantined a batch on %s: %s", topic, res.reason)
        if res.ack is not None and res.gateway_id is not None:
            info = self._client.publish(pb.ack_topic(res.gateway_id), res.ack, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                c.errors += 1
                log.error("ack publish to %s failed: rc %s", res.gateway_id, info.rc)
            else:
                c.acks += 1

    def start(self, wait_s: float = 10.0) -> IngestWorker:
        """Connect, start the loops, and wait (up to wait_s) until the subscription is granted."""
        self._thread = threading.Thread(target=self._run, name="mcode-ingest", daemon=True)
        self._thread.start()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect(self._host, self._port, clean_start=False, properties=props)
        self._client.loop_start()
        if not self.subscribed.wait(wait_s):
            self.stop()
            raise RuntimeError(f"ingest worker: no subscription on {self._host}:{self._port}")
        return self

    def stop(self) -> None:
        """Finish what was delivered, then disconnect. Deliveries not yet handled were not PUBACKed,
        so the broker redelivers them to the next session (clean_start=False)."""
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(30)
            self._thread = None
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> IngestWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

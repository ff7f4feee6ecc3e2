"""MQTT uplink: publishes sealed batches from the spool and deletes them only on the cloud's ack.

paho-mqtt 2.x, MQTT v5, QoS 1, a persistent session (clean_start False, session expiry) so
acks sent while the gateway is away are queued for it. A PUBACK proves only the hop to the
broker, so a batch stays in the spool until an ack (protocol.batch.decode_ack) arrives on the
gateway's ack topic after the cloud's commit. Unacked batches are sent again after
`republish_after_s` and after every reconnect; the cloud dedups, `Spool.confirm` is idempotent.

At most `max_inflight` batches are outstanding (published, not acked). paho callbacks run on
its network thread; `pump()` may be called from any thread (it takes a lock).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import MqttConfig
from gateway.spool import Spool
from protocol import batch as pbatch

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"


@dataclass
class UplinkStats:
    connects: int = 0
    disconnects: int = 0
    published: int = 0  # publish() calls accepted by paho, including resends
    republished: int = 0
    publish_refused: int = 0  # publish() returned an error rc
    confirmed: int = 0  # acks with status stored
    quarantined: int = 0
    acks_other: int = 0  # unknown status: batch kept
    acks_malformed: int = 0


class Uplink:
    def __init__(self, cfg: MqttConfig, gateway_hex: str, spool: Spool,
                 on_ack: Callable[[int, dict[str, object]], None] | None = None,
                 client_id: str | None = None) -> None:
        self.cfg = cfg
        self.gateway_hex = gateway_hex
        self.spool = spool
        self.on_ack = on_ack
        self.batch_topic = pbatch.batch_topic(gateway_hex)
        self.ack_topic = pbatch.ack_topic(gateway_hex)
        self.status_topic = pbatch.status_topic(gateway_hex)
        self.stats = UplinkStats()
        self._lock = threading.RLock()
        self._inflight: dict[int, float] = {}  # bseq -> monotonic time of last publish
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = False
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"gw-{gateway_hex}",
                                  protocol=mqtt.MQTTv5)
        c = self.client
        if cfg.username:
            c.username_pw_set(cfg.username, cfg.password)
        c.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        # Bounded: the spool is the real queue; paho's is RAM only (check publish rc).
        c.max_queued_messages_set(2 * cfg.max_inflight + 16)
        c.max_inflight_messages_set(max(cfg.max_inflight, 20))
        self._jitter_backoff()
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (paho's thread reconnects with back-off for ever)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive,
                                  clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline (retained), disconnect cleanly, stop paho's thread. The spool keeps the rest."""
        self._stopping = True
        if self._connected.is_set():
            try:
                info = self.client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
                if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as e:
                log.warning("offline status not sent: %s", e)
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Connected and subscribed to the ack topic."""
        return self._subscribed.wait(timeout)

    def inflight(self) -> list[int]:
        with self._lock:
            return sorted(self._inflight)

    def _jitter_backoff(self) -> None:
        # paho doubles min_delay up to max_delay; a random min spreads a fleet's reconnects.
        self.client.reconnect_delay_set(min_delay=max(1, round(random.uniform(0.5, 2.0))), max_delay=30)

    # -- sending --------------------------------------------------------------------------

    def pump(self) -> int:
        """Publish pending batches up to the in-flight window; resend those unacked for too long.

        Returns how many were published. Safe to call often and from any thread."""
        if not self._subscribed.is_set():
            return 0
        with self._lock:
            now = time.monotonic()
            due = [b for b, t in self._inflight.items() if now - t >= self.cfg.republish_after_s]
            room = self.cfg.max_inflight - (len(self._inflight) - len(due))
            if room <= 0:
                return 0
            sent: list[int] = []
            for p in self.spool.pending_batches(limit=self.cfg.max_inflight + len(due)):
                if len(sent) >= room:
                    break
                if p.bseq in self._inflight and p.bseq not in due:
                    continue
                info = self.client.publish(self.batch_topic, p.payload, qos=1)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    # Not sent (no connection, paho queue full): try again on the next pump.
                    self.stats.publish_refused += 1
                    log.info("publish of batch %d refused: %s", p.bseq, mqtt.error_string(info.rc))
                    self._inflight.pop(p.bseq, None)
                    break
                if p.bseq in self._inflight or p.attempts:
                    self.stats.republished += 1
                self._inflight[p.bseq] = now
                self.stats.published += 1
                sent.append(p.bseq)
            if sent:
                self.spool.mark_published(sent)
            return len(sent)

    # -- paho callbacks (network thread) --------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    rc: ReasonCode, props: Properties | None) -> None:
        if rc.is_failure:
            log.warning("MQTT connect refused: %s", rc)
            return
        self.stats.connects += 1
        self._connected.set()
        log.info("MQTT connected to %s:%d (session present: %s)", self.cfg.host, self.cfg.port,
                 flags.session_present)
        with self._lock:
            self._inflight.clear()  # everything unacked goes again on this connection
        client.subscribe(self.ack_topic, qos=1)
        client.publish(self.status_topic, ONLINE, qos=1, retain=True)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      rcs: list[ReasonCode], props: Properties | None) -> None:
        if any(r.is_failure for r in rcs):
            log.error("subscription to %s refused: %s", self.ack_topic, rcs)
            return
        self._subscribed.set()
        self.pump()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       rc: ReasonCode, props: Properties | None) -> None:
        self._connected.clear()
        self._subscribed.clear()
        self.stats.disconnects += 1
        with self._lock:
            self._inflight.clear()
        if not self._stopping:
            log.warning("MQTT disconnected: %s; reconnecting", rc)
            self._jitter_backoff()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != self.ack_topic:
            return
        try:
            ack = pbatch.decode_ack(bytes(msg.payload))
        except Exception as e:  # cbor2 raises several types on garbage
            self.stats.acks_malformed += 1
            log.error("malformed ack on %s: %s", msg.topic, e)
            return
        bseq = int(ack["bseq"])
        status = ack.get("status")
        if status == pbatch.ACK_STORED:
            n = self.spool.confirm(bseq)
            self.stats.confirmed += 1
            log.debug("batch %d stored by the cloud (%s new, %s dup, %s rejected); %d deleted", bseq,
                      ack.get("stored"), ack.get("dup"), ack.get("rej"), n)
            if ack.get("rej"):
                log.warning("cloud rejected %s records of batch %d", ack.get("rej"), bseq)
        elif status == pbatch.ACK_QUARANTINED:
            n = self.spool.confirm(bseq)
            self.stats.quarantined += 1
            log.error("BATCH %d QUARANTINED by the cloud: reason=%r (%d records leave this gateway; "
                      "the cloud keeps them with the reason)", bseq, ack.get("reason"), n)
        else:
            self.stats.acks_other += 1
            log.warning("ack for batch %d with unknown status %r: keeping the batch", bseq, status)
            return
        with self._lock:
            self._inflight.pop(bseq, None)
        if self.on_ack is not None:
            self.on_ack(bseq, ack)
        self.pump()

"""Broker security on the real Mosquitto (sim/broker.py: password file and per-gateway ACL).

Gateway A is GATEWAY_ID, gateway B is B_ID, each logged in as itself. What each may do:
write its own batch and status, read its own ack and config; nothing of another gateway's.

Mosquitto 2.0's acl_file does not check subscriptions: a SUBACK grants any topic, and the read
ACL is applied to each message at delivery. So "B cannot read A's acks" is shown by what B
receives, with a sentinel: messages from one client to one subscriber arrive in order, so
once B has B's own message, published after A's, A's would have come first.
"""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import MqttConfig
from gateway.spool import Spool
from gateway.uplink import Uplink
from protocol import batch as pbatch
from protocol import gwconfig
from sim.broker import Broker
from sim.cloud_acker import CloudAcker
from tests.conftest import GATEWAY_ID as A_ID
from tests.gateway.helpers import DEV_A, GW_ID, recs
from tests.wait import wait_for

B_ID = "b1b2b3b4b5b6b7b8"
PASSWORDS = {"cloud": "cloud-pw", A_ID: "gw-pw", B_ID: "gw2-pw"}
NOT_AUTHORIZED = 0x87
NO_MATCHING_SUBSCRIBERS = 0x10  # a successful PUBACK when nobody subscribes


class Client:
    """A raw MQTT v5 client that records every CONNACK, PUBACK, SUBACK and message."""

    def __init__(self, broker: Broker, user: str | None, password: str | None = None) -> None:
        self.lock = threading.Lock()
        self.connack: ReasonCode | None = None
        self.pubacks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.closed = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user is not None:
            self.c.username_pw_set(user, password)
        self.c.reconnect_delay_set(30, 30)  # a refused client must not retry within the test
        self.c.on_connect = self._on_connect
        self.c.on_publish = lambda cl, ud, mid, rc, pr: self._put(self.pubacks, mid, rc)
        self.c.on_subscribe = lambda cl, ud, mid, rcs, pr: self._put(self.subacks, mid, rcs)
        self.c.on_message = self._on_message
        self.c.on_disconnect = lambda *a: self.closed.set()
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        wait_for(lambda: self.connack is not None, what="CONNACK")

    def _on_connect(self, cl: mqtt.Client, ud: object, fl: object, rc: ReasonCode, pr: object) -> None:
        self.connack = rc

    def _put(self, d: dict[int, object], mid: int, v: object) -> None:
        with self.lock:
            d[mid] = v

    def _on_message(self, cl: mqtt.Client, ud: object, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((m.topic, bytes(m.payload)))

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """QoS 1 publish; returns the PUBACK's reason code."""
        mid = self.c.publish(topic, payload, qos=1).mid
        wait_for(lambda: mid in self.pubacks, what=f"PUBACK for {topic}")
        return self.pubacks[mid]

    def subscribe(self, topic: str) -> list[ReasonCode]:
        mid = self.c.subscribe(topic, qos=1)[1]
        wait_for(lambda: mid in self.subacks, what=f"SUBACK for {topic}")
        return self.subacks[mid]

    def received(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.mark.parametrize("user, password", [(A_ID, "not-the-password"), (A_ID, "gw2-pw"),
                                            ("f0f0f0f0f0f0f0f0", "gw-pw"), (None, None)],
                         ids=["wrong-password", "another-gateways-password", "unknown-user", "anonymous"])
def test_connect_refused(broker: Broker, user: str | None, password: str | None) -> None:
    c = Client(broker, user, password)
    try:
        assert c.connack is not None and c.connack.is_failure
        # Mosquitto 2.0.11 answers bad credentials and anonymous alike with 0x87 Not authorized.
        assert c.connack.value == NOT_AUTHORIZED, c.connack
        wait_for(c.closed.is_set, what="the broker closing the connection")
    finally:
        c.close()


def test_right_password_connects(broker: Broker) -> None:
    for user, pw in PASSWORDS.items():
        c = Client(broker, user, pw)
        try:
            assert c.connack is not None and not c.connack.is_failure, (user, c.connack)
        finally:
            c.close()


def test_gateway_b_cannot_publish_as_a(broker: Broker) -> None:
    cloud = Client(broker, "cloud", "cloud-pw")
    b = Client(broker, B_ID, "gw2-pw")
    try:
        assert not any(r.is_failure for r in cloud.subscribe("mcode/v0/gw/#"))
        forged = b"forged by B"
        for topic in (pbatch.batch_topic(A_ID), pbatch.status_topic(A_ID), pbatch.ack_topic(A_ID),
                      gwconfig.config_topic(A_ID)):
            rc = b.publish(topic, forged)
            assert rc.value == NOT_AUTHORIZED, (topic, rc)
        # nor may a gateway forge the cloud's messages to itself
        for topic in (pbatch.ack_topic(B_ID), gwconfig.config_topic(B_ID)):
            assert b.publish(topic, forged).value == NOT_AUTHORIZED, topic
        # its own topics pass (the cloud subscribes, so the PUBACK is a plain success)
        assert not b.publish(pbatch.batch_topic(B_ID), b"B's own sentinel").is_failure
        wait_for(lambda: bool(cloud.received(pbatch.batch_topic(B_ID))), what="B's own batch at the cloud")
        assert [p for _, p in cloud.messages if p == forged] == []
        assert cloud.received(pbatch.batch_topic(A_ID)) == []
    finally:
        b.close()
        cloud.close()


def test_gateway_b_cannot_read_a(broker: Broker) -> None:
    cloud = Client(broker, "cloud", "cloud-pw")
    b = Client(broker, B_ID, "gw2-pw")
    try:
        topics = [pbatch.ack_topic(A_ID), gwconfig.config_topic(A_ID), pbatch.batch_topic(A_ID),
                  "mcode/v0/gw/+/ack", "mcode/v0/gw/#"]
        for t in topics:
            rcs = b.subscribe(t)
            # granted (see the module doc) or refused; either way nothing of A's may arrive
            assert all(r.value in (0x01, NOT_AUTHORIZED) for r in rcs), (t, rcs)
        assert not any(r.is_failure for r in b.subscribe(gwconfig.config_topic(B_ID)))
        for topic in (pbatch.ack_topic(A_ID), gwconfig.config_topic(A_ID)):
            assert not cloud.publish(topic, b"for A only").is_failure
        assert not cloud.publish(gwconfig.config_topic(B_ID), b"for B").is_failure  # the sentinel
        wait_for(lambda: bool(b.received(gwconfig.config_topic(B_ID))), what="B's own config")
        assert [t for t, _ in b.messages] == [gwconfig.config_topic(B_ID)] * len(b.messages)
    finally:
        b.close()
        cloud.close()


def test_uplink_of_b_claiming_to_be_a_gets_nothing_through(broker: Broker, tmp_path: Path) -> None:
    """A real gateway process logged in as B but configured with A's id (a stolen or copied
    config): every batch it publishes on A's topic gets PUBACK 0x87, the batches stay in its
    spool, and the cloud sees nothing from it."""
    key = Ed25519PrivateKey.generate()
    spool = Spool(tmp_path / "b.db", GW_ID, key)
    spool.add_records(DEV_A, recs(DEV_A, range(1, 31)))
    while spool.seal_batch(10):
        pass
    acker = CloudAcker(broker.host, broker.port, key.public_key()).start()
    cfg = MqttConfig(host=broker.host, port=broker.port, username=B_ID, password="gw2-pw", keepalive=5)
    up = Uplink(cfg, A_ID, spool)
    up.start()
    try:
        wait_for(lambda: up.pump() >= 0 and up.stats.puback_failures >= 4, what="refused PUBACKs")
        assert up.stats.pubacks == 0 and up.stats.confirmed == 0
        assert len(spool.pending_batches()) == 3
        sentinel = Client(broker, A_ID, "gw-pw")  # the real A, after B's attempts
        try:
            body = pbatch.Batch(GW_ID, 1, 0, [(DEV_A, recs(DEV_A, [99])[0])])
            assert not sentinel.publish(pbatch.batch_topic(A_ID), pbatch.sign(body, key)).is_failure
            wait_for(lambda: acker.stats.deliveries >= 1, what="the real A's batch at the cloud")
            assert acker.delivery_log == [(GW_ID, 1)]
        finally:
            sentinel.close()
    finally:
        up.stop()
        acker.stop()
        spool.close()


def test_uplink_with_a_wrong_password_keeps_trying_and_says_why(broker: Broker, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", GW_ID, Ed25519PrivateKey.generate())
    cfg = MqttConfig(host=broker.host, port=broker.port, username=A_ID, password="stale-password",
                     reconnect_min_s=0.2, reconnect_max_s=0.5)
    up = Uplink(cfg, A_ID, spool)
    up.start()
    try:
        wait_for(lambda: up.stats.connect_failures >= 3, what="refused connects, retried")
        assert up.stats.connects == 0 and not up.connected
        assert up.stats.last_error == "CONNACK Not authorized"
    finally:
        up.stop()
        spool.close()

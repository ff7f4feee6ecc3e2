"""Broker security on the real Mosquitto (sim/broker.py: password auth and per-gateway ACLs in
Mosquitto's dynamic-security plugin).

Gateway A is GATEWAY_ID, gateway B is B_ID, each logged in as itself. What each may do:
write its own batch, status and report, subscribe to and read its own ack and config; nothing
of another gateway's. The plugin checks SUBSCRIBE: a filter outside a user's ACL gets SUBACK
0x87 (no subscription is made), and each delivered message is checked again. "B receives
nothing of A's" is shown with a sentinel: messages from one client to one subscriber arrive in
order, so once B has B's own message, published after A's, A's would have come first.

Every user is bound to one client id (gateways to gw-<id>, the cloud's users to their derived ids):
another id is CONNACK 0x87, so no user can take over another's session (issue 12 D; with the real
ingest worker and nothing of the victim's lost: tests/cloud/test_ingest_trust.py). Payloads above
the broker's message_size_limit go nowhere: Mosquitto 2.0.11 closes the sender's connection
("protocol error"; its manual says PUBACK 0x83).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from cloud.mqtt import identity
from cloud.mqtt.worker import DEFAULT_GROUP, default_group, shared_subscription
from gateway.config import MqttConfig
from gateway.spool import Spool
from gateway.uplink import Uplink
from protocol import batch as pbatch
from protocol import gwconfig
from sim.broker import CLOUD_USER, MESSAGE_SIZE_LIMIT, Broker
from sim.cloud_acker import CloudAcker
from tests.conftest import GATEWAY_ID as A_ID
from tests.gateway.helpers import DEV_A, GW_ID, recs
from tests.wait import wait_for

B_ID = "b1b2b3b4b5b6b7b8"
PASSWORDS = {"cloud": "cloud-pw", A_ID: "gw-pw", B_ID: "gw2-pw"}
NOT_AUTHORIZED = 0x87
GRANTED_QOS_1 = 0x01
NO_MATCHING_SUBSCRIBERS = 0x10  # a successful PUBACK when nobody subscribes
CLOUD_USERS = identity.cloud_users(CLOUD_USER, ("0", "1", "2", "3"))
STATUS_SUBSCRIPTION = "mcode/v0/gw/+/status"
CLOUD_READS = (pbatch.BATCH_SUBSCRIPTION, STATUS_SUBSCRIPTION, gwconfig.REPORT_SUBSCRIPTION)
# What a gateway may not subscribe to: other gateways' topics, wildcards (even over its own
# topics), and the ingest workers' shared subscription under any group name, the real one included.
REFUSED_FOR_B = [pbatch.ack_topic(A_ID), gwconfig.config_topic(A_ID), pbatch.batch_topic(A_ID),
                 pbatch.status_topic(A_ID), gwconfig.report_topic(A_ID),
                 pbatch.BATCH_SUBSCRIPTION, "mcode/v0/gw/+/ack", "mcode/v0/gw/#", "#",
                 f"mcode/v0/gw/{B_ID}/+", pbatch.batch_topic(B_ID),
                 shared_subscription(default_group(PASSWORDS["cloud"])), shared_subscription(DEFAULT_GROUP),
                 f"$share/any/{pbatch.ack_topic(A_ID)}", "$CONTROL/dynamic-security/#", "$SYS/#"]


class Client:
    """A raw MQTT v5 client that records every CONNACK, PUBACK, SUBACK and message."""

    def __init__(self, broker: Broker, user: str | None, password: str | None = None,
                 client_id: str | None = None) -> None:
        self.lock = threading.Lock()
        self.connack: ReasonCode | None = None
        self.pubacks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.closed = threading.Event()
        if client_id is None:  # the user's own: gw-<id> for a gateway; the open stand-in picks any
            client_id = identity.gateway_client_id(user) if user and user != CLOUD_USER else ""
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if user is not None:
            self.c.username_pw_set(user, password)
        self.c.reconnect_delay_set(30, 30)  # a refused client must not retry within the test
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.c.on_disconnect = lambda *a: self.closed.set()
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        wait_for(lambda: self.connack is not None, what="CONNACK")

    def _on_connect(self, cl: mqtt.Client, ud: object, fl: object, rc: ReasonCode, pr: object) -> None:
        self.connack = rc

    def _on_publish(self, cl: mqtt.Client, ud: object, mid: int, rc: ReasonCode, pr: object) -> None:
        with self.lock:
            self.pubacks[mid] = rc

    def _on_subscribe(self, cl: mqtt.Client, ud: object, mid: int, rcs: list[ReasonCode], pr: object) -> None:
        with self.lock:
            self.subacks[mid] = rcs

    def _on_message(self, cl: mqtt.Client, ud: object, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((m.topic, bytes(m.payload)))

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """QoS 1 publish; returns the PUBACK's reason code."""
        mid = self.c.publish(topic, payload, qos=1).mid
        wait_for(lambda: mid in self.pubacks, what=f"PUBACK for {topic}")
        return self.pubacks[mid]

    def subscribe(self, topic: str) -> list[ReasonCode]:
        rc, mid = self.c.subscribe(topic, qos=1)
        assert rc == mqtt.MQTT_ERR_SUCCESS and mid is not None, rc
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
    a = Client(broker, A_ID, "gw-pw")  # the victim, reading its own ack and config
    b = Client(broker, B_ID, "gw2-pw")
    try:
        for t in CLOUD_READS:
            assert [r.value for r in cloud.subscribe(t)] == [GRANTED_QOS_1], t
        for t in (pbatch.ack_topic(A_ID), gwconfig.config_topic(A_ID)):
            assert [r.value for r in a.subscribe(t)] == [GRANTED_QOS_1], t
        forged = b"forged by B"
        for topic in (pbatch.batch_topic(A_ID), pbatch.status_topic(A_ID), gwconfig.report_topic(A_ID),
                      pbatch.ack_topic(A_ID), gwconfig.config_topic(A_ID)):
            rc = b.publish(topic, forged)
            assert rc.value == NOT_AUTHORIZED, (topic, rc)
        # nor may a gateway forge the cloud's messages to itself
        for topic in (pbatch.ack_topic(B_ID), gwconfig.config_topic(B_ID)):
            assert b.publish(topic, forged).value == NOT_AUTHORIZED, topic
        # its own topics pass (the cloud subscribes, so the PUBACK is a plain success)
        assert not b.publish(pbatch.batch_topic(B_ID), b"B's own sentinel").is_failure
        wait_for(lambda: bool(cloud.received(pbatch.batch_topic(B_ID))), what="B's own batch at the cloud")
        assert not cloud.publish(pbatch.ack_topic(A_ID), b"the cloud's ack").is_failure  # A's sentinel
        wait_for(lambda: bool(a.received(pbatch.ack_topic(A_ID))), what="the cloud's ack at A")
        assert [p for _, p in cloud.messages] == [b"B's own sentinel"]
        assert a.messages == [(pbatch.ack_topic(A_ID), b"the cloud's ack")]
    finally:
        b.close()
        a.close()
        cloud.close()


def test_gateway_b_may_subscribe_to_nothing_but_its_own_ack_and_config(broker: Broker) -> None:
    cloud = Client(broker, "cloud", "cloud-pw")
    a = Client(broker, A_ID, "gw-pw")
    b = Client(broker, B_ID, "gw2-pw")
    try:
        for t in REFUSED_FOR_B:
            assert [r.value for r in b.subscribe(t)] == [NOT_AUTHORIZED], t
        for t in (pbatch.ack_topic(B_ID), gwconfig.config_topic(B_ID)):
            assert [r.value for r in b.subscribe(t)] == [GRANTED_QOS_1], t
        # traffic on every refused topic: A's batch, status and report, the cloud's ack and config for A
        assert [r.value for r in cloud.subscribe(pbatch.BATCH_SUBSCRIPTION)] == [GRANTED_QOS_1]
        for topic in (pbatch.batch_topic(A_ID), pbatch.status_topic(A_ID), gwconfig.report_topic(A_ID)):
            assert not a.publish(topic, b"A's").is_failure
        for topic in (pbatch.ack_topic(A_ID), gwconfig.config_topic(A_ID)):
            assert cloud.publish(topic, b"for A only").value == NO_MATCHING_SUBSCRIBERS, topic
        wait_for(lambda: bool(cloud.received(pbatch.batch_topic(A_ID))), what="A's batch at the cloud")
        assert not cloud.publish(gwconfig.config_topic(B_ID), b"for B").is_failure  # the sentinel
        wait_for(lambda: bool(b.received(gwconfig.config_topic(B_ID))), what="B's own config")
        assert b.messages == [(gwconfig.config_topic(B_ID), b"for B")]
    finally:
        b.close()
        a.close()
        cloud.close()


def test_cloud_may_read_gateways_and_write_acks_and_configs_only(broker: Broker) -> None:
    cloud = Client(broker, "cloud", "cloud-pw")
    try:
        for t in (*CLOUD_READS, shared_subscription(default_group("cloud-pw")),
                  shared_subscription(DEFAULT_GROUP), pbatch.batch_topic(A_ID)):
            assert [r.value for r in cloud.subscribe(t)] == [GRANTED_QOS_1], t
        for t in ("mcode/v0/gw/#", "#", "mcode/v0/gw/+/ack", "mcode/v0/gw/+/config",
                  "$CONTROL/dynamic-security/#"):
            assert [r.value for r in cloud.subscribe(t)] == [NOT_AUTHORIZED], t
        # the cloud cannot forge what a gateway says
        for topic in (pbatch.batch_topic(A_ID), pbatch.status_topic(A_ID), gwconfig.report_topic(A_ID)):
            assert cloud.publish(topic, b"forged by the cloud").value == NOT_AUTHORIZED, topic
        for topic in (pbatch.ack_topic(A_ID), gwconfig.config_topic(A_ID)):
            assert not cloud.publish(topic, b"ok").is_failure, topic
    finally:
        cloud.close()


@pytest.mark.parametrize("user, password", [("cloud", "cloud-pw"), (B_ID, "gw2-pw")])
def test_nobody_may_administer_the_acls(broker: Broker, user: str, password: str) -> None:
    """The plugin's own admin topic is an ACL like any other: no user has it, so nobody can grant
    itself more through the broker."""
    c = Client(broker, user, password)
    try:
        grant = {"commands": [{"command": "addRoleACL", "rolename": f"gateway-{B_ID}",
                               "acltype": "subscribePattern", "topic": "#", "allow": True}]}
        rc = c.publish("$CONTROL/dynamic-security/v1", json.dumps(grant).encode())
        assert rc.value == NOT_AUTHORIZED, rc
        assert [r.value for r in c.subscribe("#")] == [NOT_AUTHORIZED]
    finally:
        c.close()


def test_uplink_of_b_claiming_to_be_a_gets_nothing_through(broker: Broker, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A real gateway process logged in as B (with B's own client id) but configured with A's id
    (a stolen or copied config): its subscription to A's ack topic is refused (SUBACK 0x87), so
    it never starts sending batches (it sends only after that SUBACK); its status on A's topic
    gets PUBACK 0x87; the batches stay in its spool and the cloud sees nothing from it."""
    key = Ed25519PrivateKey.generate()
    spool = Spool(tmp_path / "b.db", GW_ID, key)
    spool.add_records(DEV_A, recs(DEV_A, range(1, 31)))
    while spool.seal_batch(10):
        pass
    acker = CloudAcker(broker.host, broker.port, key.public_key()).start()
    cfg = MqttConfig(host=broker.host, port=broker.port, username=B_ID, password="gw2-pw", keepalive=5,
                     reconnect_max_s=1.0)
    up = Uplink(cfg, A_ID, spool, client_id=identity.gateway_client_id(B_ID))
    up.start()
    try:
        # the status goes out after the SUBSCRIBE on the same connection, so its PUBACK comes
        # after the SUBACK: by then the refusal has been handled
        wait_for(lambda: up.stats.puback_failures >= 1, what="the refused status PUBACK")
        assert up.stats.connects >= 1 and not up.wait_ready(0)
        assert f"subscription to {pbatch.ack_topic(A_ID)} refused" in caplog.text
        assert "Not authorized" in caplog.text
        # counted, said in last_error, and asked again (reconnect_max_s later), refused again
        assert up.stats.subscribe_refused >= 1 and "refused" in up.stats.last_error
        wait_for(lambda: up.stats.subscribe_refused >= 2, what="the subscription asked again")
        assert up.pump() == 0
        assert up.stats.published == up.stats.pubacks == up.stats.confirmed == 0
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


def test_uplink_of_b_with_a_client_id_is_refused_at_connect(broker: Broker, tmp_path: Path) -> None:
    """The same copied config with the uplink's default client id, gw-<A>: CONNACK 0x87 (before
    issue 12 D it connected and closed the real A's connection)."""
    spool = Spool(tmp_path / "b.db", GW_ID, Ed25519PrivateKey.generate())
    cfg = MqttConfig(host=broker.host, port=broker.port, username=B_ID, password="gw2-pw",
                     reconnect_min_s=0.2, reconnect_max_s=0.5)
    victim = Client(broker, A_ID, "gw-pw")
    up = Uplink(cfg, A_ID, spool)
    up.start()
    try:
        wait_for(lambda: up.stats.connect_failures >= 2, what="refused connects, retried")
        assert up.stats.connects == 0 and up.stats.last_error == "CONNACK Not authorized"
        assert not victim.closed.is_set() and not victim.publish(pbatch.status_topic(A_ID), b"{}").is_failure
    finally:
        up.stop()
        victim.close()
        spool.close()


def _users() -> list[tuple[str, str, str]]:
    """(user, password, its own client id) for every bound user of the broker fixture."""
    gws = [(g, pw, identity.gateway_client_id(g)) for g, pw in ((A_ID, "gw-pw"), (B_ID, "gw2-pw"))]
    return gws + [(u, "cloud-pw", identity.client_id("cloud-pw", u)) for u in CLOUD_USERS]


def test_every_user_connects_only_with_its_own_client_id(broker: Broker) -> None:
    """Regresses issue 12 D: with only its own password, gateway A connected as gw-<B> or as the
    cloud's ingest worker or report listener, and Mosquitto disconnected the real client."""
    users = _users()
    for user, pw, own in users:
        c = Client(broker, user, pw, client_id=own)
        try:
            assert c.connack is not None and not c.connack.is_failure, (user, c.connack)
        finally:
            c.close()
        # the next user's id (gateways try the cloud's, the cloud's users each other's and a
        # gateway's), and the cloud's old fixed worker id
        nxt = users[(users.index((user, pw, own)) + 1) % len(users)][2]
        for other in (nxt, "mcode-cloud-ingest"):
            c = Client(broker, user, pw, client_id=other)
            try:
                assert c.connack is not None and c.connack.value == NOT_AUTHORIZED, (user, other, c.connack)
            finally:
                c.close()


def test_gateway_a_cannot_take_over_b_or_the_cloud(broker: Broker) -> None:
    """The holders stay connected while A tries their ids: B (a gateway) and the cloud's worker
    (its id derived from the cloud's password, which A does not have)."""
    b = Client(broker, B_ID, "gw2-pw")
    worker_user = CLOUD_USERS[0]
    worker = Client(broker, worker_user, "cloud-pw", client_id=identity.client_id("cloud-pw", worker_user))
    try:
        for victim in (identity.gateway_client_id(B_ID), identity.client_id("cloud-pw", worker_user)):
            a = Client(broker, A_ID, "gw-pw", client_id=victim)
            a.close()
            assert a.connack is not None and a.connack.value == NOT_AUTHORIZED, victim
        # both still hold their connections: a round trip each, and no disconnect seen
        assert not b.publish(pbatch.status_topic(B_ID), b"{}").is_failure
        assert [r.value for r in worker.subscribe(STATUS_SUBSCRIPTION)] == [GRANTED_QOS_1]
        assert not b.closed.is_set() and not worker.closed.is_set()
    finally:
        worker.close()
        b.close()


def test_a_broker_with_no_open_user_binds_the_stand_in_too(tmp_path: Path) -> None:
    """The fixture leaves the test stand-in user `cloud` open (sim/cloud_acker.py picks its ids);
    without open users it is bound like every other."""
    with Broker(tmp_path / "closed", PASSWORDS, open_users=frozenset()) as closed:
        c = Client(closed, CLOUD_USER, "cloud-pw")  # a random id
        c.close()
        assert c.connack is not None and c.connack.value == NOT_AUTHORIZED
        c = Client(closed, CLOUD_USER, "cloud-pw", client_id=identity.client_id("cloud-pw", CLOUD_USER))
        c.close()
        assert c.connack is not None and not c.connack.is_failure


def test_payload_over_the_size_limit_goes_nowhere(broker: Broker) -> None:
    """Regresses "the broker accepts 10 MB payloads": now the limit is the largest legitimate
    message (a signed config, 256 KiB; a batch is at most 52,118 bytes)."""
    assert MESSAGE_SIZE_LIMIT == max(pbatch.MAX_PAYLOAD, gwconfig.MAX_PAYLOAD) == 256 * 1024
    cloud = Client(broker, CLOUD_USER, "cloud-pw")
    a = Client(broker, A_ID, "gw-pw")
    try:
        assert [r.value for r in cloud.subscribe(pbatch.BATCH_SUBSCRIPTION)] == [GRANTED_QOS_1]
        a.c.publish(pbatch.batch_topic(A_ID), b"\0" * (MESSAGE_SIZE_LIMIT + 1), qos=1)
        wait_for(a.closed.is_set, what="the broker closing the oversized sender")
        a.close()
        a = Client(broker, A_ID, "gw-pw")  # reconnected: the largest legitimate size passes
        assert not a.publish(pbatch.batch_topic(A_ID), b"\1" * MESSAGE_SIZE_LIMIT).is_failure
        wait_for(lambda: bool(cloud.received(pbatch.batch_topic(A_ID))), what="the largest message")
        assert [len(p) for p in cloud.received(pbatch.batch_topic(A_ID))] == [MESSAGE_SIZE_LIMIT]
    finally:
        a.close()
        cloud.close()

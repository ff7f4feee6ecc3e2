"""A test-side stand-in for the cloud's ingest: verifies each batch's signature, "commits" it and
acks it, as cloud/worker.py does: a persistent session (clean start off, session expiry), the
ack published after the commit, the PUBACK after the ack (paho sends it when on_message returns).

Like the real cloud it stores a batch once per (gateway, bseq) and acks a redelivery again as
a duplicate. It also counts commits per record, so a record that reached it in two different
batches shows up (`twice()`), and keeps the commit order (`log`) for per-device order checks.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import batch as pbatch
from protocol import health
from protocol import record as precord
from sim.broker import Broker

SESSION_EXPIRY_S = 600


class CloudAcker:
    """User `cloud`: subscribes to every gateway's batches. `decide(bseq)` returns an ack status,
    or None to stay silent (a cloud that received but has not committed)."""

    def __init__(self, broker: Broker,
                 public_key: Ed25519PublicKey | Mapping[bytes, Ed25519PublicKey],
                 decide: Callable[[int], str | None] = lambda b: pbatch.ACK_STORED,
                 client_id: str | None = None) -> None:
        self.broker = broker
        self.keys = public_key
        self.decide = decide
        self.lock = threading.Lock()
        self.records: set[tuple[bytes, bytes]] = set()  # (device id, record) stored
        self.log: list[tuple[bytes, bytes]] = []  # the same, in commit order
        self.record_commits: Counter[tuple[bytes, bytes]] = Counter()
        self.committed: set[tuple[bytes, int]] = set()  # (gateway id, bseq)
        self.deliveries = 0
        self.delivery_log: list[tuple[bytes, int]] = []  # (gateway id, bseq) as delivered
        self.delivered: set[int] = set()
        self.duplicates = 0  # redeliveries of a committed batch, acked again
        self.bad_signatures = 0
        self.malformed = 0
        self.acked: list[int] = []
        self.session_present: list[bool] = []  # per CONNACK
        self.ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"cloud-{id(self)}",
                             protocol=mqtt.MQTTv5)
        self.c.username_pw_set("cloud", "cloud-pw")
        self.c.reconnect_delay_set(1, 2)
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.on_message = self._on_message
        self.connect()

    def connect(self, timeout: float = 10.0) -> None:
        """Connect (again) with the same client id: a persistent session gets what was queued."""
        self.ready.clear()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.c.connect(self.broker.host, self.broker.port, clean_start=False, properties=props)
        self.c.loop_start()
        assert self.ready.wait(timeout), "acker did not subscribe"

    def _on_connect(self, cl: mqtt.Client, ud: object, flags: mqtt.ConnectFlags, rc: object,
                    props: object) -> None:
        self.session_present.append(bool(flags.session_present))
        cl.subscribe(pbatch.BATCH_SUBSCRIPTION, qos=1)

    def _key(self, gateway_id: bytes) -> Ed25519PublicKey | None:
        if isinstance(self.keys, Ed25519PublicKey):
            return self.keys
        return self.keys.get(gateway_id)

    def _on_message(self, cl: mqtt.Client, ud: object, msg: mqtt.MQTTMessage) -> None:
        try:
            body, sig, b = pbatch.open_envelope(bytes(msg.payload))
        except pbatch.BatchError:
            with self.lock:
                self.malformed += 1
            return
        key = self._key(b.gateway_id)
        with self.lock:
            self.deliveries += 1
            self.delivery_log.append((b.gateway_id, b.bseq))
            self.delivered.add(b.bseq)
            if key is None or not pbatch.verify(body, sig, key):
                self.bad_signatures += 1
                return
            status = self.decide(b.bseq)
            if status is None:
                return
            dup = (b.gateway_id, b.bseq) in self.committed
            if status == pbatch.ACK_STORED and not dup:  # "commit" before acking
                self.committed.add((b.gateway_id, b.bseq))
                self.records.update(b.records)
                self.log.extend(b.records)
                self.record_commits.update(b.records)
            self.duplicates += dup
            self.acked.append(b.bseq)
        cl.publish(pbatch.ack_topic(b.gateway_id.hex()),
                   pbatch.encode_ack(b.bseq, status, stored=0 if dup else len(b.records),
                                     duplicates=len(b.records) if dup else 0,
                                     reason="test quarantine" if status != pbatch.ACK_STORED else ""),
                   qos=1)

    def twice(self) -> list[tuple[bytes, bytes]]:
        """Records committed more than once (in two different batches)."""
        with self.lock:
            return [r for r, n in self.record_commits.items() if n > 1]

    def seqs_by_device(self) -> dict[bytes, list[int]]:
        """Each device's record seqs in the order the cloud committed them."""
        out: dict[bytes, list[int]] = {}
        with self.lock:
            for dev, raw in self.log:
                out.setdefault(dev, []).append(precord.unpack(raw)[4])
        return out

    def stop(self) -> None:
        """Disconnect; the session stays on the broker (queued batches wait for `connect`)."""
        self.c.disconnect()
        self.c.loop_stop()


def observe_status(broker: Broker, gateway_hex: str = "a1a2a3a4a5a6a7a8"
                   ) -> tuple[mqtt.Client, list[dict[str, object]]]:
    """A cloud-side reader of a gateway's status topic, decoding every message (protocol.health).
    It subscribes on every connect, so it follows the gateway across broker restarts."""
    got: list[dict[str, object]] = []
    ready = threading.Event()
    obs = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    obs.username_pw_set("cloud", "cloud-pw")
    obs.reconnect_delay_set(1, 2)
    obs.on_connect = lambda cl, *a: cl.subscribe(pbatch.status_topic(gateway_hex), qos=1)
    obs.on_subscribe = lambda *a: ready.set()
    obs.on_message = lambda cl, ud, m: got.append(health.decode(m.payload))
    obs.connect(broker.host, broker.port)
    obs.loop_start()
    assert ready.wait(10)
    return obs, got


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)

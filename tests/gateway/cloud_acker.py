"""A test-side stand-in for the cloud's ingest: verifies each batch's signature and acks it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

from protocol import batch as pbatch
from sim.broker import Broker


class CloudAcker:
    """User `cloud`: subscribes to every gateway's batches. `decide(bseq)` returns an ack status,
    or None to stay silent (a cloud that received but has not committed)."""

    def __init__(self, broker: Broker, public_key: Ed25519PublicKey,
                 decide: Callable[[int], str | None] = lambda b: pbatch.ACK_STORED) -> None:
        self.public_key = public_key
        self.decide = decide
        self.lock = threading.Lock()
        self.records: set[tuple[bytes, bytes]] = set()
        self.deliveries = 0
        self.delivered: set[int] = set()
        self.bad_signatures = 0
        self.acked: list[int] = []
        self.ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cloud-{id(self)}",
                             protocol=mqtt.MQTTv5)
        self.c.username_pw_set("cloud", "cloud-pw")
        self.c.reconnect_delay_set(1, 2)
        self.c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe(pbatch.BATCH_SUBSCRIPTION, qos=1)
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.on_message = self._on_message
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        assert self.ready.wait(10), "acker did not subscribe"

    def _on_message(self, cl: mqtt.Client, ud: object, msg: mqtt.MQTTMessage) -> None:
        body, sig, b = pbatch.open_envelope(bytes(msg.payload))
        with self.lock:
            self.deliveries += 1
            self.delivered.add(b.bseq)
            if not pbatch.verify(body, sig, self.public_key):
                self.bad_signatures += 1
                return
            status = self.decide(b.bseq)
            if status is None:
                return
            if status == pbatch.ACK_STORED:
                self.records.update(b.records)  # "commit" before acking
            self.acked.append(b.bseq)
        cl.publish(pbatch.ack_topic(b.gateway_id.hex()),
                   pbatch.encode_ack(b.bseq, status, stored=len(b.records),
                                     reason="test quarantine" if status != pbatch.ACK_STORED else ""),
                   qos=1)

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)

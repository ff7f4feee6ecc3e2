"""A test gateway on the real broker: publishes batches, collects the cloud's acks."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.mqtt.identity import gateway_client_id
from cloud.settings import Settings
from protocol import batch as pbatch
from protocol import record
from protocol.hmac256 import HmacKey
from protocol.keys import record_key
from sim.broker import Broker

WAIT_S = 20.0  # an upper bound on waiting for a message, not a performance threshold


def records(device: dict[str, Any], seqs: range | list[int], epoch: int = 1,
            kind: int = record.KIND_TAP) -> list[tuple[bytes, bytes]]:
    key = HmacKey(record_key(bytes.fromhex(device["key"])))
    dev = bytes.fromhex(device["device_id"])
    return [(dev, record.make(key, dev, kind, record.FLAG_CLOCK_SET, epoch, s, 1_700_000_000 + s,
                          s.to_bytes(8, "big"))) for s in seqs]


class GatewayClient:
    def __init__(self, broker: Broker, gw_hex: str, password: str,
                 on_ack: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.gw_hex = gw_hex
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self._on_ack = on_ack
        self._ready = threading.Event()
        # its own client id: the broker binds each gateway user to gw-<id> (a test of another
        # id is in tests/gateway/test_broker_security.py)
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gateway_client_id(gw_hex),
                             protocol=mqtt.MQTTv5)
        self.c.username_pw_set(gw_hex, password)
        self.c.on_connect = lambda cl, ud, fl, rc, props: cl.subscribe(pbatch.ack_topic(gw_hex), qos=1)
        self.c.on_subscribe = lambda *a: self._ready.set()
        self.c.on_message = self._message
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        assert self._ready.wait(WAIT_S)

    def _message(self, _c: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        ack = pbatch.decode_ack(bytes(msg.payload))
        if self._on_ack is not None:
            ack["seen"] = self._on_ack(ack)
        self.acks.put(ack)

    def publish(self, payload: bytes, topic: str | None = None) -> None:
        info = self.c.publish(topic or pbatch.batch_topic(self.gw_hex), payload, qos=1)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
        info.wait_for_publish(WAIT_S)

    def ack(self) -> dict[str, Any]:
        return self.acks.get(timeout=WAIT_S)

    def acks_until(self, bseqs: set[int], extra: int = 0,
                   timeout: float = 3 * WAIT_S) -> list[dict[str, Any]]:
        """Every ack that arrives until each of `bseqs` has one and `extra` more acks naming no
        bseq of those have come (refused batches whose bseq could not be read are acked as -1)."""
        got: list[dict[str, Any]] = []
        missing, others = set(bseqs), 0
        deadline = time.monotonic() + timeout
        while missing or others < extra:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.gw_hex}: no ack for {len(missing)} batches, e.g. "
                                     f"{sorted(missing)[:10]}; {others} of {extra} others")
            try:
                ack = self.acks.get(timeout=left)
            except queue.Empty:
                continue
            got.append(ack)
            if ack["bseq"] in bseqs:
                missing.discard(ack["bseq"])
            else:
                others += 1
        return got

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def cloud_settings(broker: Broker, **kw: Any) -> Settings:
    """The cloud's settings for the test broker: its users are cloud-<role> (cloud/mqtt/identity.py)."""
    return Settings(broker_host=broker.host, broker_port=broker.port, broker_user="cloud",
                    broker_password="cloud-pw", **kw)

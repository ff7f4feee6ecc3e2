"""The cloud stand-in (sim/cloud_acker.py) acks only batches whose signature verifies, and
survives garbage."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from protocol import batch as pbatch
from protocol import record
from protocol.hmac256 import HmacKey
from sim.broker import Broker
from sim.cloud_acker import CloudAcker
from tests.conftest import GATEWAY_ID

GW = bytes.fromhex(GATEWAY_ID)
DEV = bytes.fromhex("0102030405060708")


def _batch(key: Ed25519PrivateKey, bseq: int, seqs: range) -> tuple[bytes, set[tuple[bytes, bytes]]]:
    recs = [record.make(HmacKey(b"r" * 32), DEV, record.KIND_TAP, 0, 1, s, 1000 + s, bytes(8))
            for s in seqs]
    return pbatch.sign(pbatch.Batch(GW, bseq, 0, [(DEV, r) for r in recs]), key), {(DEV, r) for r in recs}


def test_acks_verified_batches_only(broker: Broker) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    acks: list[dict[str, object]] = []
    got_two, ready = threading.Event(), threading.Event()

    def on_message(cl: mqtt.Client, ud: object, msg: mqtt.MQTTMessage) -> None:
        acks.append(pbatch.decode_ack(bytes(msg.payload)))
        if len(acks) == 2:
            got_two.set()

    gw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-{GATEWAY_ID}", protocol=mqtt.MQTTv5)
    gw.username_pw_set(GATEWAY_ID, "gw-pw")  # the broker binds a gateway user to gw-<id>
    gw.on_message = on_message
    gw.on_subscribe = lambda *a: ready.set()
    gw.connect(broker.host, broker.port)
    gw.subscribe(pbatch.ack_topic(GATEWAY_ID), qos=1)
    gw.loop_start()
    assert ready.wait(10)
    with CloudAcker(broker.host, broker.port, {GW: key.public_key()}) as acker:
        good1, recs1 = _batch(key, 7, range(1, 11))
        forged, _ = _batch(other, 8, range(11, 21))
        good2, recs2 = _batch(key, 9, range(21, 31))
        for payload in (b"not cbor \xff", good1, forged, good2):
            gw.publish(pbatch.batch_topic(GATEWAY_ID), payload, qos=1).wait_for_publish(10)
        assert got_two.wait(30)
        # acks come in order on one topic, so once bseq 9's is here nothing more is due for bseq 8
        assert [(a["bseq"], a["status"], a["stored"]) for a in acks] == [
            (7, pbatch.ACK_STORED, 10), (9, pbatch.ACK_STORED, 10)]
        assert acker.records == recs1 | recs2
        assert (acker.stats.malformed, acker.stats.bad_signatures, acker.stats.acked) == (1, 1, 2)
        assert acker.delivered == {7, 8, 9}
    gw.loop_stop()

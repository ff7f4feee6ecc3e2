"""Ingest on a real Mosquitto: signed batches stored once, acked after the commit; every bad input
quarantined with its reason while the worker keeps going."""

from __future__ import annotations

from collections.abc import Iterator

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud.mqtt.worker import IngestWorker
from cloud.services.ingest import ingest, ingest_batch
from cloud.store.engine import SessionFactory
from cloud.store.models import BatchRow, Event, Quarantine
from protocol import batch as pbatch
from protocol import record
from sim.broker import Broker
from tests.cloud.conftest import World
from tests.cloud.mqtt_helpers import GatewayClient, cloud_settings, records
from tests.conftest import GATEWAY_ID

GW_RAW = bytes.fromhex(GATEWAY_ID)
OTHER_GW = "b1b2b3b4b5b6b7b8"  # a broker user the cloud has never been told about


def n_events(sf: SessionFactory) -> int:
    with sf() as s:
        return int(s.scalar(select(func.count(Event.id))) or 0)


def quarantine_reasons(sf: SessionFactory) -> list[str]:
    with sf() as s:
        return list(s.scalars(select(Quarantine.reason).order_by(Quarantine.id)))


@pytest.fixture
def worker(broker: Broker, sf: SessionFactory) -> Iterator[IngestWorker]:
    with IngestWorker(sf, cloud_settings(broker)) as w:
        yield w


@pytest.fixture
def gw(broker: Broker, sf: SessionFactory) -> Iterator[GatewayClient]:
    # on each ack, count the stored events: proves the commit came before the ack
    g = GatewayClient(broker, GATEWAY_ID, "gw-pw", on_ack=lambda ack: n_events(sf))
    yield g
    g.close()


def signed(world: World, bseq: int, recs: list[tuple[bytes, bytes]]) -> bytes:
    return pbatch.sign(pbatch.Batch(GW_RAW, bseq, 1_700_000_000_000, recs), world.gw_key)


def test_batch_stored_once_acked_after_commit(world: World, sf: SessionFactory, worker: IngestWorker,
                                             gw: GatewayClient) -> None:
    recs = records(world.devices[0], range(1, 6)) + records(world.devices[1], range(1, 4))
    payload = signed(world, 7, recs)
    gw.publish(payload)
    ack = gw.ack()
    assert ack["bseq"] == 7 and ack["status"] == pbatch.ACK_STORED
    assert (ack["stored"], ack["dup"], ack["rej"]) == (8, 0, 0)
    assert ack["seen"] == 8  # the events were committed when the ack arrived

    gw.publish(payload)  # redelivery: nothing new, acked again
    ack = gw.ack()
    assert ack["bseq"] == 7 and ack["status"] == pbatch.ACK_STORED
    assert (ack["stored"], ack["dup"], ack["rej"]) == (0, 8, 0)
    assert n_events(sf) == 8
    with sf() as s:
        b = s.scalars(select(BatchRow)).one()
        assert (b.gateway_id, b.bseq, b.stored, b.deliveries, b.status) == (GATEWAY_ID, 7, 8, 2, "stored")
        ev = s.scalars(select(Event).where(Event.device_id == world.devices[0]["device_id"],
                                           Event.seq == 3)).one()
        assert (ev.epoch, ev.kind, ev.flags, ev.gateway_id, ev.bseq) == (1, record.KIND_TAP, 1, GATEWAY_ID, 7)
        assert ev.raw == recs[2][1]
    assert worker.counts.stored == 8 and worker.counts.duplicates == 8


def test_same_seq_new_epoch_is_a_new_event(world: World, sf: SessionFactory, worker: IngestWorker,
                                           gw: GatewayClient) -> None:
    gw.publish(signed(world, 1, records(world.devices[0], [1, 2], epoch=1)))
    assert gw.ack()["stored"] == 2
    # the device lost its counter: same seqs under a new epoch are new events, not duplicates
    gw.publish(signed(world, 2, records(world.devices[0], [1, 2], epoch=2)))
    assert gw.ack()["stored"] == 2
    assert n_events(sf) == 4


def test_bad_inputs_quarantined_worker_survives(world: World, sf: SessionFactory, broker: Broker,
                                                worker: IngestWorker, gw: GatewayClient) -> None:
    dev0 = world.devices[0]
    # 1. forged signature: signed by a key the cloud does not know for this gateway
    gw.publish(pbatch.sign(pbatch.Batch(GW_RAW, 1, 0, records(dev0, [1])), Ed25519PrivateKey.generate()))
    ack = gw.ack()
    assert (ack["bseq"], ack["status"], ack["reason"]) == (1, pbatch.ACK_QUARANTINED, "bad_signature")
    # 2. a record with a bad MAC between good neighbours
    good = records(dev0, [10, 12])
    bad_dev, bad_rec = records(dev0, [11])[0]
    tampered = bad_rec[:20] + bytes([bad_rec[20] ^ 1]) + bad_rec[21:]
    gw.publish(signed(world, 2, [good[0], (bad_dev, tampered), good[1]]))
    ack = gw.ack()
    assert ack["status"] == pbatch.ACK_STORED and (ack["stored"], ack["rej"]) == (2, 1)
    assert ack["reason"] == "bad_mac"
    # 3. malformed CBOR
    gw.publish(b"\xff\x00 not cbor at all")
    ack = gw.ack()
    assert (ack["status"], ack["reason"], ack["bseq"]) == (pbatch.ACK_QUARANTINED, "malformed_cbor", -1)
    # 4. oversized payload
    gw.publish(b"\x00" * (pbatch.MAX_PAYLOAD + 1))
    ack = gw.ack()
    assert (ack["status"], ack["reason"]) == (pbatch.ACK_QUARANTINED, "oversized")
    # 5. a record from a device the cloud does not know
    stranger = {"device_id": "00000000deadbeef", "key": "11" * 32}
    gw.publish(signed(world, 3, records(stranger, [1]) + records(dev0, [13])))
    ack = gw.ack()
    assert (ack["stored"], ack["rej"], ack["reason"]) == (1, 1, "unknown_device")
    # 6. a batch from a gateway the cloud was never told about, and one whose body names another
    other = GatewayClient(broker, OTHER_GW, "gw2-pw")
    try:
        other_key = Ed25519PrivateKey.generate()
        other.publish(pbatch.sign(pbatch.Batch(bytes.fromhex(OTHER_GW), 5, 0, records(dev0, [20])),
                                  other_key))
        ack = other.ack()
        assert (ack["bseq"], ack["status"], ack["reason"]) == (5, pbatch.ACK_QUARANTINED, "unknown_gateway")
        other.publish(signed(world, 6, records(dev0, [21])))  # a gateway replaying another's batch
        ack = other.ack()
        assert (ack["bseq"], ack["status"], ack["reason"]) == (6, pbatch.ACK_QUARANTINED, "topic_mismatch")
    finally:
        other.close()
    # 7. and a good batch after all that is still stored
    gw.publish(signed(world, 4, records(dev0, [14, 15])))
    ack = gw.ack()
    assert (ack["status"], ack["stored"]) == (pbatch.ACK_STORED, 2)

    assert quarantine_reasons(sf) == ["bad_signature", "bad_mac", "malformed_cbor", "oversized",
                                      "unknown_device", "unknown_gateway", "topic_mismatch"]
    with sf() as s:
        seqs = sorted(s.scalars(select(Event.seq)))
        q = s.scalars(select(Quarantine).where(Quarantine.reason == "bad_mac")).one()
        assert q.payload == bad_dev + tampered and q.gateway_id == GATEWAY_ID
    assert seqs == [10, 12, 13, 14, 15]
    assert worker.counts.errors == 0 and worker.counts.quarantined == 5


def test_core_without_broker(world: World, sf: SessionFactory) -> None:
    """The core on its own: a topic naming no gateway gets no ack; malformed envelopes get one."""
    assert ingest_batch(sf, "elsewhere/x", b"junk") is None
    topic = pbatch.batch_topic(GATEWAY_ID)
    bad_rec = cbor2.dumps([1, cbor2.dumps({"gw": GW_RAW, "bseq": 9, "ts": 0, "recs": [[b"x", b"y"]]}), b"s"])
    junks = [b"", cbor2.dumps([1, 2, 3]), cbor2.dumps([1, b"\xa0", b"s"]), cbor2.dumps({"a": 1}), bad_rec]
    for junk in junks:
        res = ingest(sf, topic, junk)
        assert res.status == pbatch.ACK_QUARANTINED and res.ack is not None
    res = ingest(sf, topic, bad_rec)
    assert (res.bseq, res.reason) == (9, "malformed_record")
    res = ingest(sf, topic, signed(world, 1, []))
    assert res.status == pbatch.ACK_STORED and res.stored == 0
    assert "bad_topic" in quarantine_reasons(sf)

"""Ingest trust (issue 12, part 9), on both databases and, where a worker is involved, the real
Mosquitto: ts bounded both ways, a gateway forwarding another tenant's devices, the quarantine
quota, revocation and key rotation (API, service and what ingest then does), retained batches."""

from __future__ import annotations

import time
from collections.abc import Iterator

import cbor2
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from cloud.mqtt.identity import gateway_client_id
from cloud.mqtt.worker import IngestWorker
from cloud.services import gateway_trust
from cloud.services.ingest import Ingestor, QuarantineQuota, ingest, quarantine_drops
from cloud.store.engine import SessionFactory, now_ms
from cloud.store.models import Event, Quarantine
from protocol import batch as pbatch
from sim.broker import Broker
from tests.cloud.conftest import ADMIN_KEY, World, provision_world, public_hex
from tests.cloud.mqtt_helpers import GatewayClient, cloud_settings, records
from tests.conftest import GATEWAY_ID

GW_RAW = bytes.fromhex(GATEWAY_ID)
TOPIC = pbatch.batch_topic(GATEWAY_ID)
TS = 1_700_000_000_000
NOT_AUTHORIZED = 0x87


def batch(world: World, bseq: int, recs: list[tuple[bytes, bytes]], ts: int = TS,
          key: Ed25519PrivateKey | None = None) -> bytes:
    return pbatch.sign(pbatch.Batch(GW_RAW, bseq, ts, recs), key or world.gw_key)


def reasons(sf: SessionFactory) -> list[str]:
    with sf() as s:
        return list(s.scalars(select(Quarantine.reason).order_by(Quarantine.id)))


def n_events(sf: SessionFactory) -> int:
    with sf() as s:
        return int(s.scalar(select(func.count(Event.id))) or 0)


OUT_OF_RANGE = [(1, -2**64), (1, -1), (1, pbatch.MAX_TS_MS + 1), (1, 2**64), (2**63, TS)]


@pytest.mark.parametrize("bseq, ts", OUT_OF_RANGE,
                         ids=["ts=-2^64", "ts=-1", "ts>max", "ts=2^64", "bseq=2^63"])
def test_out_of_range_ts_or_bseq_is_malformed_body(world: World, sf: SessionFactory, bseq: int,
                                                   ts: int) -> None:
    """Regresses `ts = -2^64`: a signed batch gave internal_error and a traceback (the BIGINT
    column overflowed). Both bounds are checked in protocol/batch.py, before the database."""
    body = cbor2.dumps({"gw": GW_RAW, "bseq": bseq, "ts": ts, "recs": []})
    payload = cbor2.dumps([pbatch.ENVELOPE_VERSION, body, world.gw_key.sign(pbatch.SIG_CONTEXT + body)])
    with pytest.raises(pbatch.BatchError) as e:
        pbatch.open_envelope(payload)
    assert e.value.reason == "malformed_body"
    res = ingest(sf, TOPIC, payload)
    assert (res.status, res.reason) == (pbatch.ACK_QUARANTINED, "malformed_body")
    assert reasons(sf) == ["malformed_body"]


def test_largest_batch_fits_max_payload(world: World) -> None:
    recs = records(world.devices[0], range(1, pbatch.MAX_RECORDS + 1))
    payload = pbatch.sign(pbatch.Batch(b"\xff" * 8, pbatch.MAX_BSEQ, pbatch.MAX_TS_MS, recs), world.gw_key)
    assert len(payload) == pbatch.MAX_PAYLOAD == pbatch.largest_payload()
    pbatch.open_envelope(payload)  # accepted


def test_records_of_another_tenants_devices_are_foreign_device(world: World, sf: SessionFactory) -> None:
    """Regresses "a gateway can forward records of devices of another tenant": gateway A (of
    Shop A) forwarded Shop B's genuine records and they were stored."""
    other = provision_world(sf, base="5020", name="Shop B", gateway_id="b1b2b3b4b5b6b7b8")
    recs = records(world.devices[0], range(1, 4)) + records(other.devices[0], range(1, 3))
    res = ingest(sf, TOPIC, batch(world, 1, recs))
    assert (res.status, res.stored, res.rejected) == (pbatch.ACK_STORED, 3, 2)
    assert res.rejected_reasons == {"foreign_device": 2}
    assert reasons(sf) == ["foreign_device", "foreign_device"]
    # B's own gateway stores them; a gateway of no merchant (the admin's) may forward any device
    other_topic = pbatch.batch_topic(other.gateway_id)
    b = pbatch.sign(pbatch.Batch(bytes.fromhex(other.gateway_id), 1, TS, recs[3:]), other.gw_key)
    assert ingest(sf, other_topic, b).stored == 2


def test_quarantine_quota_counts_what_it_drops(world: World, sf: SessionFactory) -> None:
    """Regresses "quarantine grows without a quota": every refusal was kept. Now a gateway's
    rows stop at its quota, the rest are counted in quarantine_drops, and still acked."""
    ing = Ingestor(sf, QuarantineQuota(bytes=10_000, rows=3))
    junk = [bytes([i]) * 1000 for i in range(6)]
    results = ing.ingest_many([(TOPIC, j) for j in junk])
    assert [r.status for r in results] == [pbatch.ACK_QUARANTINED] * 6
    assert [r.dropped for r in results] == [0, 0, 0, 1, 1, 1]
    assert all(r.ack is not None for r in results)
    assert len(reasons(sf)) == 3
    assert quarantine_drops(sf)[GATEWAY_ID]["rows"] == 3
    assert quarantine_drops(sf)[GATEWAY_ID]["bytes"] == 3000
    # bytes too, and per gateway: B's quota is its own
    big = Ingestor(sf, QuarantineQuota(bytes=2500, rows=100))
    other = pbatch.batch_topic("b1b2b3b4b5b6b7b8")
    results = big.ingest_many([(other, bytes([9, i]) * 500) for i in range(4)])
    assert [r.dropped for r in results] == [0, 0, 1, 1]
    drops = quarantine_drops(sf)
    assert drops["b1b2b3b4b5b6b7b8"]["rows"] == 2 and drops[GATEWAY_ID]["rows"] == 3
    # a record-level refusal counts against the same quota
    recs = records(world.devices[0], range(1, 3))
    bad = [(recs[0][0], recs[0][1][:-1] + bytes([recs[0][1][-1] ^ 1]))]
    res = ing.ingest(TOPIC, batch(world, 5, bad + recs[1:]))
    assert (res.stored, res.rejected, res.dropped) == (1, 1, 1)
    assert quarantine_drops(sf)[GATEWAY_ID]["last_reason"] == "bad_mac"


def test_revoked_gateway_is_quarantined(world: World, sf: SessionFactory, client: TestClient) -> None:
    """Regresses "there is no way to revoke a gateway"."""
    assert ingest(sf, TOPIC, batch(world, 1, records(world.devices[0], [1]))).stored == 1
    h = {"Authorization": f"Bearer {world.merchant['api_key']}"}
    r = client.post(f"/gateways/{GATEWAY_ID}/revoke", headers=h)
    assert r.status_code == 200 and r.json()["revoked_at_ms"] > 0, r.text
    res = ingest(sf, TOPIC, batch(world, 2, records(world.devices[0], [2])))
    assert (res.status, res.reason) == (pbatch.ACK_QUARANTINED, "gateway_revoked")
    assert n_events(sf) == 1
    again = client.post(f"/gateways/{GATEWAY_ID}/revoke", headers=h).json()
    assert again["revoked_at_ms"] == r.json()["revoked_at_ms"]
    new = Ed25519PrivateKey.generate()
    r = client.post(f"/gateways/{GATEWAY_ID}/rotate", json={"public_key": public_hex(new)}, headers=h)
    assert (r.status_code, r.json()["code"]) == (409, "gateway_revoked")


def test_rotation_keeps_what_was_in_flight(world: World, sf: SessionFactory, client: TestClient) -> None:
    """Regresses "there is no way to rotate a gateway": batches signed with the old key before the
    switch (bseq below until_bseq) are stored after the rotation; later ones with the old key are
    refused; the new key works; after the grace window the old key verifies nothing."""
    old, new = world.gw_key, Ed25519PrivateKey.generate()
    in_flight = [batch(world, b, records(world.devices[0], [b]), key=old) for b in (1, 2, 3)]
    assert ingest(sf, TOPIC, in_flight[0]).stored == 1  # arrived before the rotation
    r = client.post(f"/gateways/{GATEWAY_ID}/rotate", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                    json={"public_key": public_hex(new), "grace_s": 3600, "until_bseq": 4})
    assert r.status_code == 200 and r.json()["public_key"] == public_hex(new), r.text
    assert [ingest(sf, TOPIC, p).stored for p in in_flight[1:]] == [1, 1]  # nothing in flight lost
    late = ingest(sf, TOPIC, batch(world, 4, records(world.devices[0], [4]), key=old))
    assert (late.status, late.reason) == (pbatch.ACK_QUARANTINED, "bad_signature")
    assert ingest(sf, TOPIC, batch(world, 4, records(world.devices[0], [4]), key=new)).stored == 1
    after_grace = Ingestor(sf, clock_ms=lambda: now_ms() + 3601 * 1000)
    res = after_grace.ingest(TOPIC, batch(world, 3, records(world.devices[0], [9]), key=old))
    assert res.reason == "bad_signature"
    assert n_events(sf) == 4


def test_revoke_and_rotate_refuse_bad_input_and_strangers(world: World, sf: SessionFactory,
                                                          client: TestClient) -> None:
    other = provision_world(sf, base="5020", name="Shop B", gateway_id="b1b2b3b4b5b6b7b8")
    h = {"Authorization": f"Bearer {other.merchant['api_key']}"}
    assert client.post(f"/gateways/{GATEWAY_ID}/revoke", headers=h).status_code == 404
    r = client.post(f"/gateways/{GATEWAY_ID}/rotate", headers=h,
                    json={"public_key": public_hex(Ed25519PrivateKey.generate())})
    assert r.status_code == 404
    assert gateway_trust.list_trust(sf, world.merchant["merchant_id"])[0]["revoked_at_ms"] is None
    mine = {"Authorization": f"Bearer {world.merchant['api_key']}"}
    for body in ({"public_key": "zz" * 32}, {"public_key": "ab" * 31},
                 {"public_key": public_hex(world.gw_key)},
                 {"public_key": public_hex(Ed25519PrivateKey.generate()), "grace_s": -1}):
        r = client.post(f"/gateways/{GATEWAY_ID}/rotate", headers=mine, json=body)
        assert r.status_code in (400, 409, 422) and r.json()["code"], (body, r.text)
    assert ingest(sf, TOPIC, batch(world, 1, records(world.devices[0], [1]))).stored == 1


@pytest.fixture
def worker(broker: Broker, sf: SessionFactory) -> Iterator[IngestWorker]:
    with IngestWorker(sf, cloud_settings(broker)) as w:
        yield w


def test_retained_batch_is_not_ingested(world: World, sf: SessionFactory, broker: Broker,
                                        worker: IngestWorker) -> None:
    """Regresses "the broker accepts retained messages on batch topics": a retained batch was
    ingested, and kept on the broker for the next subscriber. Now the worker counts and drops it;
    the batch after it (the sentinel) is stored and acked."""
    gw = GatewayClient(broker, GATEWAY_ID, "gw-pw")
    try:
        info = gw.c.publish(TOPIC, batch(world, 1, records(world.devices[0], [1])), qos=1, retain=True)
        info.wait_for_publish(10)
        gw.publish(batch(world, 2, records(world.devices[0], [2])))
        ack = gw.ack()
        assert ack["bseq"] == 2 and ack["status"] == pbatch.ACK_STORED
        assert worker.counts.retained == 1 and n_events(sf) == 1
    finally:
        gw.close()


def test_ts_minus_2_to_the_64_through_the_broker(world: World, sf: SessionFactory, broker: Broker,
                                                 worker: IngestWorker) -> None:
    """The finding as found: a signed batch with ts = -2^64 over MQTT is acked malformed_body."""
    body = cbor2.dumps({"gw": GW_RAW, "bseq": 3, "ts": -2**64, "recs": []})
    gw = GatewayClient(broker, GATEWAY_ID, "gw-pw")
    try:
        gw.publish(cbor2.dumps([1, body, world.gw_key.sign(pbatch.SIG_CONTEXT + body)]))
        ack = gw.ack()
        assert (ack["bseq"], ack["status"], ack["reason"]) == (3, pbatch.ACK_QUARANTINED, "malformed_body")
        assert worker.counts.quarantined_by_reason == {"malformed_body": 1}
    finally:
        gw.close()


def test_gateway_cannot_take_over_the_worker_or_another_gateway(world: World, sf: SessionFactory,
                                                                broker: Broker, worker: IngestWorker) -> None:
    """Regresses issue 12 D: gateway B, with only its own password, connected as the worker's
    client id (then the fixed `mcode-cloud-ingest`) or as gw-<A>; Mosquitto dropped the holder and,
    taking over the worker's session, its queued batches (19 of 40 of A's were lost in 10 s). Now
    every attempt is CONNACK 0x87 between A's batches, and all 40 are stored and acked."""
    victims = [worker.client_id, gateway_client_id(GATEWAY_ID), "mcode-cloud-ingest"]
    gw = GatewayClient(broker, GATEWAY_ID, "gw-pw")
    refused: list[int] = []
    try:
        for bseq in range(1, 41):
            gw.c.publish(TOPIC, batch(world, bseq, records(world.devices[0], [bseq])), qos=1)
            refused.append(_connect_as(broker, "b1b2b3b4b5b6b7b8", "gw2-pw", victims[bseq % 3]))
        acks = gw.acks_until(set(range(1, 41)))
        assert {a["bseq"] for a in acks if a["status"] == pbatch.ACK_STORED} == set(range(1, 41))
        assert set(refused) == {NOT_AUTHORIZED} and n_events(sf) == 40
        assert worker.alive and gw.c.is_connected()
    finally:
        gw.close()


def _connect_as(broker: Broker, user: str, password: str, client_id: str) -> int:
    """The CONNACK reason code for `user` connecting with `client_id`."""
    got: list[int] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_connect = lambda cl, ud, fl, rc, pr: got.append(rc.value)
    c.connect(broker.host, broker.port)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        c.loop(0.05)
    c.disconnect()
    return got[0] if got else -1

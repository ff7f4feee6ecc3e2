"""Two ingest workers behind one real Mosquitto, in one shared-subscription group.

Worker A is `mcode cloud ingest` in its own process; worker B runs in this one. Mid-stream A is
frozen (SIGSTOP: it can PUBACK nothing more) and SIGKILLed with deliveries in flight, then started
again under the same worker id: the broker resends those (DUP) to its next session. Gateways send
overlapping records, from two gateways, and resend some batches whole. Afterwards every record is
stored exactly once, every batch acked, bad batches interleaved with good ones are quarantined and
counted per reason while both workers keep going, and a device's missing seqs are reported."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from cloud.mqtt.identity import gateway_client_id
from cloud.mqtt.worker import DEFAULT_GROUP, IngestWorker, default_group, shared_subscription
from cloud.services import provision
from cloud.services.gaps import gap_ranges
from cloud.services.ingest import Ingestor
from cloud.services.stats import merchant_stats
from cloud.store.engine import SessionFactory
from cloud.store.models import BatchRow, Event, Quarantine
from protocol import batch as pbatch
from protocol import record
from sim.broker import Broker
from sim.devices import ROOT
from tests.cloud.conftest import MASTER_KEY, World, provision_world, public_hex
from tests.cloud.mqtt_helpers import WAIT_S, GatewayClient, cloud_settings, records
from tests.conftest import GATEWAY_ID

OTHER_GW = "b1b2b3b4b5b6b7b8"  # the second gateway user of the broker fixture
PASSWORDS = {GATEWAY_ID: "gw-pw", OTHER_GW: "gw2-pw"}
PER_BATCH = 25
STEP = 20  # each batch of a device starts 20 seqs after its last one began: 5 records overlap


class WorkerProc:
    """`mcode cloud ingest` in a process of its own; its counts come from its log (every 50 ms)."""

    def __init__(self, db_url: str, broker: Broker, worker_id: str) -> None:
        env = dict(os.environ, MCODE_CLOUD_BROKER_USER="cloud", MCODE_CLOUD_BROKER_PASSWORD="cloud-pw",
                   MCODE_CLOUD_MASTER_KEY=MASTER_KEY)
        self.p = subprocess.Popen(
            [sys.executable, "-c", "from mcode.cli import app; app()", "cloud", "ingest",
             "--worker-id", worker_id, "--db-url", db_url, "--broker-host", broker.host,
             "--broker-port", str(broker.port), "--report-s", "0.05"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.counts: dict[str, Any] = {}
        self.log: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.ready.wait(WAIT_S), "".join(self.log[-20:])

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.log.append(line)
            if "ingest counts " in line:
                self.counts = json.loads(line.split("ingest counts ", 1)[1])
            elif "ingest worker " in line:
                self.ready.set()

    def wait(self, cond: Any, what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not cond(self.counts):
            assert time.monotonic() < deadline, f"worker process: {what}; {self.counts}"
            time.sleep(0.02)

    def stop(self) -> dict[str, Any]:
        """SIGTERM: finishes what it has, logs its final counts."""
        self.p.send_signal(signal.SIGTERM)
        assert self.p.wait(WAIT_S) == 0, "".join(self.log[-20:])
        time.sleep(0.1)  # the reader thread takes the last line
        return self.counts


def test_shared_subscription_subscribes_the_group() -> None:
    assert shared_subscription(DEFAULT_GROUP) == "$share/mcode-ingest/mcode/v0/gw/+/batch"
    assert shared_subscription("") == pbatch.BATCH_SUBSCRIPTION
    # the default group is not guessable without the cloud's broker password
    assert default_group("cloud-pw").startswith("mcode-ingest-")
    assert default_group("cloud-pw") != default_group("x")
    assert default_group("") == DEFAULT_GROUP


class _Rogue:
    """A gateway's broker user trying to join the workers' shared group (and to read batches and
    another gateway's acks directly); it records each SUBACK and every message it gets."""

    def __init__(self, broker: Broker) -> None:
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.messages: list[str] = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gateway_client_id(OTHER_GW),
                             protocol=mqtt.MQTTv5)
        self.c.username_pw_set(OTHER_GW, PASSWORDS[OTHER_GW])
        connected = threading.Event()
        self.c.on_connect = lambda *a: connected.set()
        self.c.on_subscribe = lambda cl, ud, mid, rcs, pr: self.subacks.put([r.value for r in rcs])
        self.c.on_message = lambda cl, ud, m: self.messages.append(m.topic)
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        assert connected.wait(WAIT_S)

    def subscribe(self, topic: str) -> list[int]:
        self.c.subscribe(topic, qos=1)
        return self.subacks.get(timeout=WAIT_S)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


NOT_AUTHORIZED = 0x87


@pytest.mark.parametrize("group", [None, DEFAULT_GROUP], ids=["derived-group", "guessable-group"])
def test_a_gateway_cannot_join_the_workers_group(broker: Broker, world: World, sf: SessionFactory,
                                                 group: str | None) -> None:
    """The broker refuses a gateway's SUBSCRIBE to the workers' shared subscription (SUBACK 0x87),
    even when it knows the group's name, so it takes no share: while it keeps trying, the worker
    gets every batch. With acl_file (no SUBSCRIBE check) it took 5 of 10 under the guessable name."""
    rogue = _Rogue(broker)
    gw = GatewayClient(broker, GATEWAY_ID, PASSWORDS[GATEWAY_ID])
    try:
        with IngestWorker(sf, cloud_settings(broker), group=group) as w:
            assert w.subscribed.wait(WAIT_S)
            attempts = (w.subscription, pbatch.BATCH_SUBSCRIPTION, pbatch.ack_topic(GATEWAY_ID))
            for n in range(1, 11):
                if n in (1, 6):  # before the stream and in the middle of it
                    for t in attempts:
                        assert rogue.subscribe(t) == [NOT_AUTHORIZED], t
                gw.publish(pbatch.sign(pbatch.Batch(bytes.fromhex(GATEWAY_ID), n, 0,
                                                   records(world.devices[0], [n])),
                                   world.gw_key))
            acks = gw.acks_until(set(range(1, 11)))
            assert sorted(a["bseq"] for a in acks) == list(range(1, 11))
            assert all(a["status"] == pbatch.ACK_STORED for a in acks)
            assert w.counts.batches == 10  # each one reached this worker, none went elsewhere first
        assert rogue.messages == []  # every batch and ack has passed by now
    finally:
        gw.close()
        rogue.close()


def test_two_workers_store_exactly_once_under_redelivery(broker: Broker, engine: Engine,
                                                         sf: SessionFactory) -> None:
    world = provision_world(sf, n_devices=4)
    key2 = Ed25519PrivateKey.generate()
    provision.create_gateway(sf, OTHER_GW, public_hex(key2), merchant_id=world.merchant["merchant_id"])
    gw_keys = {GATEWAY_ID: world.gw_key, OTHER_GW: key2}
    devs, gap_dev = world.devices[:3], world.devices[3]
    recs = [records(d, range(1, 1700)) for d in devs]  # recs[i][s - 1] is seq s of device i
    gws = {g: GatewayClient(broker, g, PASSWORDS[g]) for g in gw_keys}
    bseq = dict.fromkeys(gw_keys, 0)
    sent: dict[str, Counter[int]] = {g: Counter() for g in gw_keys}  # publishes per bseq
    expected: set[tuple[str, int, int]] = set()

    def send(gw: str, rs: list[tuple[bytes, bytes]], times: int = 1, key: Ed25519PrivateKey | None = None,
             bad: tuple[tuple[bytes, bytes], ...] = ()) -> int:
        """Publish a batch of rs; a forged one (`key`) stores nothing, nor do its `bad` records."""
        bseq[gw] += 1
        payload = pbatch.sign(pbatch.Batch(bytes.fromhex(gw), bseq[gw], 1_700_000_000_000, rs),
                              key or gw_keys[gw])
        for _ in range(times):
            gws[gw].publish(payload)
        if key is None:
            sent[gw][bseq[gw]] += times
            expected.update((d.hex(), record.unpack(r)[3], record.unpack(r)[4])
                            for d, r in rs if (d, r) not in bad)
        return bseq[gw]

    def good(k: int) -> None:
        """Batch k: device k % 3, seqs from 20 * (k // 3) + 1, by either gateway; every 10th twice."""
        d, start = k % 3, STEP * (k // 3)
        send((GATEWAY_ID, OTHER_GW)[k % 2], recs[d][start:start + PER_BATCH], times=2 if k % 10 == 9 else 1)

    url = engine.url.render_as_string(hide_password=False)
    a1 = WorkerProc(url, broker, "1")
    b = IngestWorker(sf, cloud_settings(broker), worker_id="2").start()
    a2 = None
    try:
        for k in range(20):
            good(k)
        a1.wait(lambda c: c.get("batches", 0) > 0, "A handled nothing")
        for k in range(20, 80):
            good(k)
        a1.p.send_signal(signal.SIGSTOP)  # frozen: what the broker sends it from now on stays unacked
        # the device that lost records: seqs 1..60 but 21..25 and 40 never arrive
        send(GATEWAY_ID, records(gap_dev, range(1, 21)))
        send(OTHER_GW, records(gap_dev, [*range(26, 40), *range(41, 61)]))
        for k in range(80, 220):
            good(k)
        a1.p.kill()
        a1.p.wait(WAIT_S)
        a2 = WorkerProc(url, broker, "1")  # its next session: the broker resends what A held

        # bad batches between good ones, while both workers run
        d0 = devs[0]
        nxt = [STEP * (219 // 3) + PER_BATCH + 1]  # device 0's next seq after the stream

        def more(n: int) -> list[tuple[bytes, bytes]]:
            nxt[0] += n
            return records(d0, range(nxt[0] - n, nxt[0]))

        send(GATEWAY_ID, more(5))
        bad_sig = send(GATEWAY_ID, more(3), key=Ed25519PrivateKey.generate())
        nxt[0] -= 3  # those three were never stored: send them again, signed properly
        dev, rec = recs[0][0]
        tampered = (dev, rec[:20] + bytes([rec[20] ^ 1]) + rec[21:])
        send(GATEWAY_ID, [*more(2), tampered, *more(2)], bad=(tampered,))
        gws[GATEWAY_ID].publish(b"\xff\x00 not cbor at all")
        stranger = {"device_id": "00000000deadbeef", "key": "11" * 32}
        unknown = records(stranger, [1])[0]
        send(GATEWAY_ID, [*more(2), unknown, *more(1)], bad=(unknown,))
        gws[GATEWAY_ID].publish(b"\x00" * (pbatch.MAX_PAYLOAD + 1))
        last = send(GATEWAY_ID, more(4))

        acks = {g: gws[g].acks_until(set(sent[g]) | ({bad_sig} if g == GATEWAY_ID else set()),
                                     extra=2 if g == GATEWAY_ID else 0) for g in gws}
        assert b.alive and a2.p.poll() is None  # nobody crashed on the bad batches
        b_counts = b.snapshot()
    finally:
        if a1.p.poll() is None:
            a1.p.kill()
        a2_counts = a2.stop() if a2 is not None else {}
        b.stop()
        for client in gws.values():
            client.close()

    # exactly once: every record sent is stored, once, whoever stored it and however often it came
    with sf() as s:
        keys = [tuple(r) for r in s.execute(select(Event.device_id, Event.epoch, Event.seq))]
        batch_rows = {(r.gateway_id, r.bseq): r for r in s.scalars(select(BatchRow))}
        stored_sum = s.scalar(select(func.sum(BatchRow.stored)))
        reasons = Counter(s.scalars(select(Quarantine.reason)))
    assert len(keys) == len(set(keys)) == len(expected) and set(keys) == expected
    assert stored_sum == len(keys)  # the batches' own bookkeeping counts each record once too
    for g, counts in sent.items():
        for n, times in counts.items():
            assert batch_rows[(g, n)].deliveries >= times

    # both workers took part, sharing (not each getting everything); A's next session got what it
    # held when it died, marked DUP
    published = sum(n for c in sent.values() for n in c.values()) + 3  # and 3 refused batches
    assert 0 < b_counts["batches"] < published
    assert a2_counts["batches"] > 0 and a2_counts["redelivered"] > 0

    # every batch acked: good ones stored, the bad ones quarantined with their reasons
    by_bseq = {g: {a["bseq"]: a for a in acks[g]} for g in acks}
    for g, counts in sent.items():
        assert all(by_bseq[g][n]["status"] == pbatch.ACK_STORED for n in counts)
    assert (by_bseq[GATEWAY_ID][bad_sig]["status"], by_bseq[GATEWAY_ID][bad_sig]["reason"]) == (
        pbatch.ACK_QUARANTINED, "bad_signature")
    assert sorted(a["reason"] for a in acks[GATEWAY_ID] if a["bseq"] == -1) == ["malformed_cbor", "oversized"]
    assert by_bseq[GATEWAY_ID][last]["stored"] == 4  # the good batch behind them all
    assert reasons == {"bad_signature": 1, "bad_mac": 1, "malformed_cbor": 1, "unknown_device": 1,
                       "oversized": 1}
    quarantined = Counter(b_counts["quarantined_by_reason"]) + Counter(a2_counts["quarantined_by_reason"])
    rejected = Counter(b_counts["rejected_by_reason"]) + Counter(a2_counts["rejected_by_reason"])
    assert quarantined == {"bad_signature": 1, "malformed_cbor": 1, "oversized": 1}
    assert rejected == {"bad_mac": 1, "unknown_device": 1}

    # gaps: the device that lost 21..25 and 40 shows 6; overlapping batches left none elsewhere
    rows = {r["device_id"]: r for r in merchant_stats(sf, world.merchant["merchant_id"])["devices"]}
    assert rows[gap_dev["device_id"]]["gaps"] == 6
    assert all(rows[d["device_id"]]["gaps"] == 0 for d in devs)
    assert gap_ranges(sf, [gap_dev["device_id"], devs[0]["device_id"]]) == {
        gap_dev["device_id"]: [(21, 25), (40, 40)], devs[0]["device_id"]: []}


def test_one_transaction_for_several_deliveries(world: World, sf: SessionFactory) -> None:
    """What a worker with a backlog does: deliveries in one transaction, each with its own result;
    the same batch twice in one go is stored once and counted as two deliveries."""
    gw = bytes.fromhex(GATEWAY_ID)
    topic = pbatch.batch_topic(GATEWAY_ID)
    d0, d1 = world.devices
    p1 = pbatch.sign(pbatch.Batch(gw, 1, 0, records(d0, range(1, 6))), world.gw_key)
    p2 = pbatch.sign(pbatch.Batch(gw, 2, 0, records(d0, range(4, 9)) + records(d1, [1])), world.gw_key)
    res = Ingestor(sf).ingest_many([(topic, p1), (topic, b"\xff junk"), (topic, p1), (topic, p2)])
    assert [(r.status, r.bseq, r.stored, r.duplicates) for r in res] == [
        (pbatch.ACK_STORED, 1, 5, 0), (pbatch.ACK_QUARANTINED, -1, 0, 0), (pbatch.ACK_STORED, 1, 0, 5),
        (pbatch.ACK_STORED, 2, 4, 2)]
    assert all(r.ack is not None for r in res)
    with sf() as s:
        assert s.scalar(select(func.count(Event.id))) == 9
        rows = {b.bseq: (b.stored, b.duplicates, b.deliveries) for b in s.scalars(select(BatchRow))}
        assert list(s.scalars(select(Quarantine.reason))) == ["malformed_cbor"]
    assert rows == {1: (5, 0, 2), 2: (4, 2, 1)}


def test_retire_sees_an_unsuback_that_comes_before_unsubscribe_returns(
        broker: Broker, sf: SessionFactory, caplog: pytest.LogCaptureFixture) -> None:
    """stop(retire=True) waits for the UNSUBACK of its own UNSUBSCRIBE. Here the broker's reply is
    handled on paho's thread before `unsubscribe()` has even returned the message id (which a busy
    caller thread can always see); the worker still recognises it and does not wait in vain."""
    w = IngestWorker(sf, cloud_settings(broker), worker_id="3").start()
    client = w._client  # the worker's own paho client: the race is between its two threads
    seen: set[int] = set()
    replied = threading.Event()
    on_unsubscribe, unsubscribe = w._on_unsubscribe, client.unsubscribe

    def on_reply(c: mqtt.Client, ud: object, mid: int, rcs: Any, props: Any) -> None:
        on_unsubscribe(c, ud, mid, rcs, props)
        seen.add(mid)
        replied.set()

    def unsubscribe_late(topic: str) -> tuple[Any, int | None]:
        rc, mid = unsubscribe(topic)
        assert replied.wait(WAIT_S) and mid in seen  # the reply is in before the caller has the mid
        return rc, mid

    client.on_unsubscribe = on_reply
    client.unsubscribe = unsubscribe_late  # type: ignore[method-assign,assignment]
    with caplog.at_level("ERROR", logger="cloud.mqtt.worker"):
        w.stop(retire=True, wait_s=WAIT_S)
    assert replied.is_set()
    assert not [r for r in caplog.records if "UNSUBACK" in r.getMessage()]

"""The trust log in the cloud, on SQLite and PostgreSQL: what the cloud logs (batches, gateways,
entries, shares, orders, postings) matches protocol/merkle.py recomputed from its leaves; proofs and
checkpoints served verify; a payout's bundle passes `audit.verify` with every key, and tampering in
the database is refused with its reason."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text, update

from audit.verify import Keys, Refused, verify_bundle
from cloud.http.app import create_app
from cloud.services import ingest, tlog
from cloud.store.engine import SessionFactory
from cloud.store.models import BatchEnvelope, LogCheckpoint, LogLeaf, LogNode, Payout
from protocol import batch as pbatch
from protocol import leaves, merkle, note, record
from protocol.bundle import parse
from protocol.hmac256 import HmacKey
from protocol.keys import record_key
from protocol.rotation import window
from tests.cloud.conftest import SETTINGS, Clock, World
from tests.cloud.test_resolve_orders import code_at, enter, order, share

PERIOD = 60
WITNESS = note.Signer.generate("witness.test/w1", note.COSIGNATURE_V1)


@pytest.fixture
def log_client(engine: Engine, clock: Clock, tmp_path: Path) -> Iterator[TestClient]:
    st = dataclasses.replace(SETTINGS, log_signing_key=str(tmp_path / "log.key"), log_origin="log.test/mcode",
                             witness_keys=WITNESS.verifier.vkey())
    with TestClient(create_app(st, engine=engine, clock_=clock), base_url="https://testserver") as c:
        yield c


def log_key(tmp_path: Path) -> note.Verifier:
    return tlog.log_signer(tmp_path / "log.key", "log.test/mcode").verifier


def taps(sf: SessionFactory, world: World, clock: Clock, bseq: int = 1, n: int = 5) -> bytes:
    """A batch of n taps by device 0 inside the current window, ingested; returns the envelope."""
    start = window(clock.t, PERIOD) * PERIOD
    d = world.devices[0]
    key, dev = HmacKey(record_key(bytes.fromhex(d["key"]))), bytes.fromhex(d["device_id"])
    recs = [(dev, record.make(key, dev, record.KIND_TAP, record.FLAG_CLOCK_SET, 1, bseq * 1000 + i, start + i,
                              bytes(8))) for i in range(n)]
    env = pbatch.sign(pbatch.Batch(bytes.fromhex(world.gateway_id), bseq, 1_700_000_000_000, recs),
                      world.gw_key)
    res = ingest.ingest(sf, pbatch.batch_topic(world.gateway_id), env)
    assert res.status == pbatch.ACK_STORED and res.stored == n, res
    return env


def journey(c: TestClient, sf: SessionFactory, world: World, clock: Clock) -> tuple[int, dict[str, Any]]:
    """Taps, then A types the display's code and shares, B comes through A's code and buys:
    A is paid. Returns A's payout id and the order (with A's and B's visitor cookies)."""
    taps(sf, world, clock)
    a = enter(c, code_at(world, window(clock.t, PERIOD)))
    a_cookie = c.cookies.get("mcode_visitor")
    b = enter(c, share(c, a["entry_id"]))
    r = order(c, world.merchant["api_key"], "o-1", b["entry_id"])
    assert r.status_code == 201, r.text
    with sf() as s:
        pid = s.scalar(select(Payout.id).where(Payout.order_id == r.json()["order_id"], Payout.level == 1))
    assert pid is not None
    return pid, {**r.json(), "cookies": (a_cookie, c.cookies.get("mcode_visitor"))}


def device_keys(world: World) -> dict[bytes, bytes]:
    return {bytes.fromhex(d["device_id"]): bytes.fromhex(d["key"]) for d in world.devices}


def stored_leaves(sf: SessionFactory) -> list[bytes]:
    with sf() as s:
        rows = s.execute(select(LogLeaf.idx, LogLeaf.leaf).order_by(LogLeaf.idx)).all()
    assert [i for i, _ in rows] == list(range(len(rows))), "leaf indexes are contiguous from 0"
    return [bytes(b) for _, b in rows]


def test_the_log_is_the_merkle_tree_of_its_leaves(log_client: TestClient, sf: SessionFactory, world: World,
                                                  clock: Clock, tmp_path: Path) -> None:
    journey(log_client, sf, world, clock)
    all_leaves = stored_leaves(sf)
    kinds = [leaves.decode(x)["k"] for x in all_leaves]
    # the gateway's key before its batch; entries, the share, the order, its posting
    assert kinds == ["gateway", "batch", "entry", "share", "entry", "order", "posting"]
    hashes = [merkle.leaf_hash(x) for x in all_leaves]
    mem = merkle.ListSource(hashes)
    with sf() as s:
        nodes = s.execute(select(LogNode.level, LogNode.idx, LogNode.hash)).all()
        assert tlog.state(s).root() == merkle.root(hashes)
    assert nodes and all(bytes(h) == mem(lv, i) for lv, i, h in nodes)
    cp_text = log_client.get("/log/checkpoint").text
    cp, _, _ = note.open_checkpoint(cp_text, log_key(tmp_path))
    assert (cp.size, cp.root) == (len(hashes), merkle.root(hashes))
    for i in range(cp.size):
        r = log_client.get("/log/proof/inclusion", params={"index": i, "size": cp.size}).json()
        proof = [base64.b64decode(p) for p in r["proof"]]
        assert merkle.verify_inclusion(i, cp.size, hashes[i], proof, cp.root)
    for old in range(cp.size + 1):
        r = log_client.get("/log/proof/consistency", params={"from": old, "to": cp.size}).json()
        assert r["from"] == old
        proof = [base64.b64decode(p) for p in r["proof"]]
        assert merkle.verify_consistency(old, cp.size, merkle.root(hashes[:old]), cp.root, proof)
    for bad in ({"index": cp.size, "size": cp.size}, {"index": 0, "size": cp.size + 1},
                {"index": -1, "size": 1}):
        r = log_client.get("/log/proof/inclusion", params=bad)
        assert r.status_code == 400 and r.json()["message_zh"], bad


def test_a_redelivered_batch_is_logged_once(log_client: TestClient, sf: SessionFactory, world: World,
                                            clock: Clock) -> None:
    env = taps(sf, world, clock)
    again = ingest.ingest(sf, pbatch.batch_topic(world.gateway_id), env)
    assert again.duplicates == 5
    assert [leaves.decode(x)["k"] for x in stored_leaves(sf)] == ["gateway", "batch"]
    with sf() as s:
        assert bytes(s.scalars(select(BatchEnvelope.envelope)).one()) == env


def test_a_payout_bundle_verifies_and_a_refund_is_logged(log_client: TestClient, sf: SessionFactory,
                                                         world: World, clock: Clock, tmp_path: Path) -> None:
    pid, placed = journey(log_client, sf, world, clock)
    key = world.merchant["api_key"]
    r = log_client.get(f"/ledger/payouts/{pid}/proof", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    rep = verify_bundle(parse(r.content), Keys(log_key(tmp_path), devices=device_keys(world)))
    assert rep.facts["order"] == placed["order_id"] and rep.facts["taps_in_window"] == 5
    assert rep.facts["chain"] == [placed["payouts"][0]["participant_id"]] and not rep.skipped[1:]
    # the sharer's own copy, by the cookie of the phone that made the share code; nobody else's
    a_cookie, b_cookie = placed["cookies"]
    log_client.cookies.clear()
    assert log_client.get(f"/me/payouts/{pid}/proof").status_code == 404
    log_client.cookies.set("mcode_visitor", b_cookie)
    assert log_client.get(f"/me/payouts/{pid}/proof").status_code == 404
    log_client.cookies.set("mcode_visitor", a_cookie)
    page = log_client.get("/me", headers={"Accept-Language": "zh-CN"})
    assert f'href="/me/payouts/{pid}/proof"' in page.text and "下载证明" in page.text  # the page links it
    r = log_client.get(f"/me/payouts/{pid}/proof")
    assert r.status_code == 200 and "payout-" in r.headers["content-disposition"]
    assert verify_bundle(parse(r.content), Keys(log_key(tmp_path))).facts["order"] == placed["order_id"]
    r = log_client.post(f"/orders/{placed['order_id']}/refund", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code in (200, 201), r.text
    refund = leaves.decode(stored_leaves(sf)[-1])
    assert refund["k"] == "posting" and refund["kind"] == "refund" and refund["order"] == placed["order_id"]
    assert sum(amount for _, amount, _ in refund["lines"]) == 0 and refund["lines"]


def test_cosignatures_are_kept_and_served(log_client: TestClient, sf: SessionFactory, world: World,
                                          clock: Clock, tmp_path: Path) -> None:
    taps(sf, world, clock)
    cp_text = log_client.get("/log/checkpoint").text
    n = note.parse_note(cp_text)
    body = n.text + "\n" + WITNESS.sign_line(n.text, 1_700_000_000)
    assert log_client.post("/log/cosignatures", content=body).status_code == 204
    _, _, cosigned = note.open_checkpoint(log_client.get("/log/checkpoint").text, log_key(tmp_path),
                                          (WITNESS.verifier,))
    assert cosigned == {WITNESS.verifier: 1_700_000_000}
    stranger = note.Signer.generate("witness.test/other", note.COSIGNATURE_V1)
    other = f"log.test/mcode\n99\n{base64.b64encode(bytes(32)).decode()}\n"
    for bad, code in ((n.text + "\n" + stranger.sign_line(n.text, 5), "cosignature_unknown_key"),
                      (other + "\n" + WITNESS.sign_line(other, 5), "unknown_checkpoint"),
                      ("not a note", "cosignature_malformed")):
        r = log_client.post("/log/cosignatures", content=bad)
        assert r.status_code in (400, 409) and r.json()["code"] == code, r.text


def _bundle(c: TestClient, world: World, pid: int) -> bytes:
    r = c.get(f"/ledger/payouts/{pid}/proof",
              headers={"Authorization": f"Bearer {world.merchant['api_key']}"})
    assert r.status_code == 200, r.text
    return r.content


def test_tampering_in_the_database_is_refused(log_client: TestClient, sf: SessionFactory, world: World,
                                              clock: Clock, tmp_path: Path) -> None:
    pid, placed = journey(log_client, sf, world, clock)
    keys = Keys(log_key(tmp_path), devices=device_keys(world))
    verify_bundle(parse(_bundle(log_client, world, pid)), keys)
    # a rewritten order amount, in the order's leaf too: the leaf no longer hashes into the tree
    with sf.begin() as s:
        row = s.scalars(select(LogLeaf).where(LogLeaf.ref == f"order:{placed['order_id']}")).one()
        m = leaves.decode(bytes(row.leaf))
        good_leaf = bytes(row.leaf)
        m["amount"] = 1
        row.leaf = leaves.encode("order", {k: v for k, v in m.items() if k not in ("k", "v")})
    with pytest.raises(Refused) as e:
        verify_bundle(parse(_bundle(log_client, world, pid)), keys)
    assert e.value.reason == "not_included"
    with sf.begin() as s:
        s.execute(update(LogLeaf).where(LogLeaf.ref == f"order:{placed['order_id']}").values(leaf=good_leaf))
    # an edited event, in the envelope kept: the envelope is not the one logged
    with sf.begin() as s:
        env = s.scalars(select(BatchEnvelope)).one()
        raw = bytearray(env.envelope)
        raw[-70] ^= 1
        env.envelope = bytes(raw)
    with pytest.raises(Refused) as e:
        verify_bundle(parse(_bundle(log_client, world, pid)), keys)
    assert e.value.reason == "bad_batch"
    # a deleted posting: the payout has no logged posting left to prove
    with sf.begin() as s:
        s.execute(text("DELETE FROM log_leaves WHERE kind = 'posting'"))
    r = log_client.get(f"/ledger/payouts/{pid}/proof",
                       headers={"Authorization": f"Bearer {world.merchant['api_key']}"})
    assert r.status_code == 409 and r.json()["code"] == "not_logged"


def test_a_bundle_uses_a_cosigned_checkpoint_when_there_is_one(log_client: TestClient, sf: SessionFactory,
                                                                world: World, clock: Clock,
                                                                tmp_path: Path) -> None:
    pid, _ = journey(log_client, sf, world, clock)
    n = note.parse_note(log_client.get("/log/checkpoint").text)
    cosig = n.text + "\n" + WITNESS.sign_line(n.text, 7)
    assert log_client.post("/log/cosignatures", content=cosig).status_code == 204
    b = parse(_bundle(log_client, world, pid))
    rep = verify_bundle(b, Keys(log_key(tmp_path), (WITNESS.verifier,)))
    assert any("cosigned by witness witness.test/w1" in x for x in rep.ok)
    with sf() as s:
        assert s.scalar(select(LogCheckpoint.size).order_by(LogCheckpoint.size.desc()).limit(1)) == \
            json.loads(json.dumps(note.parse_checkpoint(n.text).size))


def test_an_export_is_checked_offline_and_tampered_data_is_refused(log_client: TestClient, sf: SessionFactory,
                                                                    world: World, clock: Clock,
                                                                    tmp_path: Path) -> None:
    from audit.logcheck import check_export
    from cloud.services import tlog_export

    _, placed = journey(log_client, sf, world, clock)
    signer = tlog.log_signer(tmp_path / "log.key", "log.test/mcode")
    keys = Keys(signer.verifier)
    counts = tlog_export.export(sf, signer, tmp_path / "good")
    assert counts["leaves"] == 7 and counts["events"] == 5 and counts["orders"] == 1
    rep = check_export(tmp_path / "good", keys)
    assert any("match the log" in x for x in rep.ok)
    # what an operator might quietly change in the database; each stays, so they are made in the
    # reverse order of the checks and each is caught by its own check
    tampers = [("UPDATE events SET time = time + 1 WHERE seq = 1001", "data_mismatch", "stored record"),
               ("DELETE FROM ledger_entries", "data_mismatch", "posting"),
               (f"UPDATE orders SET amount_minor = 1 WHERE id = {placed['order_id']}", "data_mismatch",
                "order"),
               ("DELETE FROM log_leaves WHERE kind = 'share'", "not_included", "leaf")]
    for i, (sql, reason, what) in enumerate(tampers):
        with sf.begin() as s:
            s.execute(text(sql))
        tlog_export.export(sf, signer, tmp_path / str(i))
        with pytest.raises(Refused) as e:
            check_export(tmp_path / str(i), keys)
        assert e.value.reason == reason and what in e.value.detail, (sql, e.value)


def test_concurrent_writers_leave_no_fork_and_no_gap(log_client: TestClient, sf: SessionFactory, world: World,
                                                     clock: Clock) -> None:
    """Orders of two campaigns, code entries and batches from several threads at once: every
    leaf index is taken once, none is skipped, and each committed order and batch has its leaf."""
    from concurrent.futures import ThreadPoolExecutor

    from cloud.services import orders
    from cloud.store.models import BatchRow, Order
    from tests.cloud.conftest import provision_world

    other = provision_world(sf, base="5020", name="Shop B", gateway_id="b1b2b3b4b5b6b7b8")
    entries = []
    for w in (world, other):
        for _ in range(3):
            e = enter(log_client, code_at(w, window(clock.t, PERIOD)))
            entries.append((w.merchant["merchant_id"], e))

    def work(i: int) -> None:
        mid, e = entries[i % len(entries)]
        orders.place_order(sf, mid, f"k{i}", e["entry_id"], 1000 + i, at_ms=int(clock.t * 1000))
        if i % 4 == 0:
            taps(sf, world, clock, bseq=10 + i, n=2)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(work, range(40)))
    kinds = [leaves.decode(x) for x in stored_leaves(sf)]  # contiguous from 0 (asserted inside)
    with sf() as s:
        assert tlog.state(s).root() == merkle.root([merkle.leaf_hash(x) for x in stored_leaves(sf)])
        order_ids = set(s.scalars(select(Order.id)))
        batches = {(g, b) for g, b in s.execute(select(BatchRow.gateway_id, BatchRow.bseq))}
    assert {m["order"] for m in kinds if m["k"] == "order"} == order_ids and len(order_ids) == 40
    assert {(m["gw"].hex(), m["bseq"]) for m in kinds if m["k"] == "batch"} == batches
    assert len([m for m in kinds if m["k"] == "posting"]) == 40


def test_trust_log_off_logs_nothing(sf: SessionFactory, world: World, clock: Clock) -> None:
    tlog.configure(sf, False)
    taps(sf, world, clock)
    with sf() as s:
        assert s.scalars(select(LogLeaf)).all() == [] and s.scalars(select(BatchEnvelope)).all() == []
        assert tlog.state(s).size == 0


def test_log_keys(tmp_path: Path) -> None:
    made = tlog.log_signer(tmp_path / "k", "log.test/a")
    assert tlog.log_signer(tmp_path / "k", "log.test/a").verifier == made.verifier  # made once, then read
    with pytest.raises(ValueError):
        tlog.log_signer(tmp_path / "k", "log.test/other")  # the file names another log
    one, two = (tlog.derived_signer(b"m" * 32, "log.test/a") for _ in range(2))
    assert one.verifier == two.verifier != tlog.derived_signer(b"n" * 32, "log.test/a").verifier
    assert [v.name for v in tlog.witness_keys(f"{WITNESS.verifier.vkey()}, {made.verifier.vkey()}")] == [
        "witness.test/w1", "log.test/a"]


def test_a_chain_from_the_bare_base_code_is_proved_without_presence(
        log_client: TestClient, sf: SessionFactory, world: World, tmp_path: Path) -> None:
    a = enter(log_client, world.campaign["base_code"])
    b = enter(log_client, share(log_client, a["entry_id"]))
    r = order(log_client, world.merchant["api_key"], "base-1", b["entry_id"])
    assert r.status_code == 201, r.text
    with sf() as s:
        pid = s.scalar(select(Payout.id).where(Payout.order_id == r.json()["order_id"], Payout.level == 1))
    assert pid is not None
    rep = verify_bundle(parse(_bundle(log_client, world, pid)), Keys(log_key(tmp_path)))
    assert rep.facts["display_code"] == "4919" and rep.facts["device"] is None
    assert any("bare base code" in x for x in rep.ok) and any("presence" in w for w, _ in rep.skipped)


def test_the_log_routes_are_rate_limited_per_client(engine: Engine, clock: Clock) -> None:
    st = dataclasses.replace(SETTINGS, rate_client_burst=2, rate_client_per_s=0.001)
    with TestClient(create_app(st, engine=engine, clock_=clock), base_url="https://testserver") as c:
        got = [c.get("/log/checkpoint").status_code for _ in range(3)]
        assert got == [200, 200, 429]
        r = c.get("/log/proof/consistency", params={"from": 0, "to": 0})
        assert r.status_code == 429 and r.headers["retry-after"] and r.json()["message_zh"]

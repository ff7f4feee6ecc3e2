"""Payouts over HTTP: the JSON API with the merchant key (due list, an idempotent settlement, its
CSV, the sharer's statement with proof links) and the console's page with sessions (the owner marks
paid with CSRF, a double submit pays once; viewers read; staff go to the till)."""

from __future__ import annotations

import csv
import io
import json
import random
import re

from fastapi.testclient import TestClient

from cloud.services import users
from cloud.store.engine import SessionFactory
from tests.cloud.conftest import Clock, World
from tests.cloud.test_console_access import accept
from tests.cloud.test_ledger import chain_entry
from tests.cloud.test_sessions import form_csrf, login

HOLD_S = 3600


def sell(client: TestClient, sf: SessionFactory, world: World, clock: Clock, n: int = 3) -> dict[str, str]:
    """n orders through chains of depth 1..n, then the hold passes: every sharer credit is due."""
    h = {"Authorization": f"Bearer {world.merchant['api_key']}"}
    cid = world.campaign["campaign_id"]
    assert client.patch(f"/campaigns/{cid}", json={"hold_s": HOLD_S}, headers=h).status_code == 200
    rng = random.Random(5)
    for i in range(n):
        entry = chain_entry(sf, world, i + 1, rng)
        r = client.post("/orders", json={"entry_id": entry, "amount_minor": 10_000},
                        headers={**h, "Idempotency-Key": f"sale-{i}"})
        assert r.status_code == 201, r.text
    flags = client.get("/review/flags", headers=h)
    for f in flags.json()["orders"] if flags.status_code == 200 else []:  # the review rules may flag
        client.post(f"/review/orders/{f['order_id']}/decision", json={"action": "release"}, headers=h)
    clock.t += HOLD_S + 1
    return h


def test_json_api_settles_once_and_exports_csv(client: TestClient, sf: SessionFactory, world: World,
                                               clock: Clock) -> None:
    h = sell(client, sf, world, clock)
    due = client.get("/payouts/due", headers=h).json()
    assert due["sharers"] and due["totals"][0]["due_minor"] == sum(r["due_minor"] for r in due["sharers"])
    pick = [r["participant_id"] for r in due["sharers"][:2]]
    assert client.post("/payouts/settlements", json={"participant_ids": pick}, headers=h).status_code == 400
    first = client.post("/payouts/settlements", json={"participant_ids": pick},
                        headers={**h, "Idempotency-Key": "batch-1"})
    again = client.post("/payouts/settlements", json={"participant_ids": pick},
                        headers={**h, "Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 201, first.text
    assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/payouts/settlements", json={"participant_ids": [pick[0]]},
                        headers={**h, "Idempotency-Key": "batch-1"})
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    st = first.json()
    paid = {ln["participant_id"]: ln["amount_minor"] for ln in st["lines"]}
    assert paid == {r["participant_id"]: r["due_minor"] for r in due["sharers"][:2]}
    nothing = client.post("/payouts/settlements", json={"participant_ids": pick},
                          headers={**h, "Idempotency-Key": "batch-2"})
    assert nothing.status_code == 409 and nothing.json()["code"] == "nothing_due"
    left = client.get("/payouts/due", headers=h).json()["sharers"]
    assert {r["participant_id"] for r in left} == {r["participant_id"] for r in due["sharers"][2:]}
    bal = client.get("/ledger/balances", headers=h).json()
    assert bal["sum_minor"] == 0
    assert bal["accounts"][f"paid:{world.merchant['merchant_id']}"] == sum(paid.values())
    r = client.get(f"/payouts/settlements/{st['settlement_id']}", params={"format": "csv"}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(int(x["sharer_id"]), int(x["amount_minor"])) for x in rows] == sorted(paid.items())
    assert all(x["settlement_id"] == str(st["settlement_id"]) and x["currency"] == "CNY"
               and x["amount"].startswith("¥") for x in rows)
    hist = client.get("/payouts/settlements", headers=h).json()["settlements"]
    assert hist[0]["total_minor"] == st["total_minor"] == sum(paid.values())
    # the sharer's statement: per order with proof links, per settlement; the ledger statement too
    sh = client.get(f"/payouts/sharers/{pick[0]}", headers=h).json()
    assert sh["paid_minor"] == paid[pick[0]] and sh["due_minor"] == 0
    assert [x["settlement_id"] for x in sh["settlements"]] == [st["settlement_id"]]
    proof = sh["orders"][0]["proof"]
    assert proof == f"/ledger/payouts/{sh['orders'][0]['payout_id']}/proof"
    bundle = client.get(proof, headers=h)
    assert bundle.status_code == 200 and json.loads(bundle.text)["format"] == "mcode-proof-bundle/v1"
    led = client.get(f"/ledger/sharers/{pick[0]}", headers=h).json()
    assert [e["txn"] for e in led["entries"]] == ["order", "settlement"] and led["balance_minor"] == 0
    assert led["entries"][0]["proof"] == proof and led["entries"][1]["proof"] is None
    assert client.get("/payouts/sharers/999999", headers=h).status_code == 404
    assert client.get("/payouts/settlements/999999", headers=h).status_code == 404


def test_console_page_owner_pays_once_viewer_reads_staff_till(client: TestClient, sf: SessionFactory,
                                                              world: World, clock: Clock) -> None:
    sell(client, sf, world, clock)
    assert client.get("/merchant/payouts", follow_redirects=False).headers["location"] == "/login"
    assert login(client, world.merchant["api_key"]).status_code == 303  # the owner
    page = client.get("/merchant/payouts")
    assert page.status_code == 200 and 'id="pay-all"' in page.text
    rows = re.findall(r'data-sharer="(\d+)"', page.text)
    assert rows
    csrf, key = form_csrf(page.text), re.search(r'name="key" value="([^"]+)"', page.text)
    assert key
    bad = client.post("/merchant/payouts/settle", data={"csrf": "nope", "key": key.group(1), "all": "1"})
    assert bad.status_code == 403 and "表单已过期" in bad.text
    none = client.post("/merchant/payouts/settle", data={"csrf": csrf, "key": key.group(1), "all": "0"})
    assert none.status_code == 400
    form = {"csrf": csrf, "key": key.group(1), "all": "0", "pid": [rows[0], rows[1]]}
    done = client.post("/merchant/payouts/settle", data=form)
    twice = client.post("/merchant/payouts/settle", data=form)  # a double click
    assert done.status_code == twice.status_code == 200 and 'id="notice"' in done.text
    h = {"Authorization": f"Bearer {world.merchant['api_key']}"}
    hist = client.get("/payouts/settlements", headers=h).json()["settlements"]
    assert len(hist) == 1 and hist[0]["sharers"] == 2
    after = client.get("/merchant/payouts").text
    assert set(re.findall(r'data-sharer="(\d+)"', after)) == set(rows[2:])
    link = re.search(r'href="(/merchant/payouts/settlements/\d+\.csv)"', after)
    assert link and client.get(link.group(1)).text.count("\n") == 3  # header and two sharers
    stmt = client.get(f"/merchant/payouts/sharers/{rows[0]}")
    proof = re.search(r'href="(/merchant/payouts/proofs/\d+)"', stmt.text)
    assert stmt.status_code == 200 and proof
    assert json.loads(client.get(proof.group(1)).text)["format"] == "mcode-proof-bundle/v1"
    # a viewer reads, without the form; staff are sent to the till
    for role, status in ((users.VIEWER, 200), (users.STAFF, 303)):
        client.cookies.clear()
        code = users.invite(sf, world.merchant["merchant_id"], role, int(clock() * 1000))["code"]
        assert accept(client, code, f"{role}-person").status_code == 303
        r = client.get("/merchant/payouts", follow_redirects=False)
        assert r.status_code == status
        if role == users.VIEWER:
            assert 'id="pay-all"' not in r.text and "data-sharer" in r.text
            sent = client.post("/merchant/payouts/settle", data={"csrf": "x", "key": "k2", "all": "1"})
            assert sent.status_code == 403
        else:
            assert r.headers["location"] == "/till"

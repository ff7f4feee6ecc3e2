"""Fraud review over HTTP on both databases: the keyed JSON API (list, decide, scan; another
tenant's order is 404) and the console page /merchant/review (owners decide with CSRF forms,
viewers read, staff go to the till, no login goes to /login)."""

from __future__ import annotations

import random

from fastapi.testclient import TestClient

from cloud.services import users
from cloud.services.ratelimits import Limits
from cloud.store.engine import SessionFactory
from sim import fraud_traffic as ft
from tests.cloud.conftest import SETTINGS, Clock, World, provision_world
from tests.cloud.test_console_access import accept, invite_code
from tests.cloud.test_ledger import check_books
from tests.cloud.test_resolve_orders import rotor
from tests.cloud.test_sessions import form_csrf, login

KIND = "sybil k=2 step=20s"


def flagged(sf: SessionFactory, world: World, n: int = 1) -> list[int]:
    """n sybil orders in the world's campaign (sim/fraud_traffic.py's attack)."""
    shop = ft.Shop(sf, world.merchant["merchant_id"], world.campaign["base_code"],
                   [rotor(world, 0), rotor(world, 1)], Limits(sf, SETTINGS, lambda: 0.0))
    for i in range(n):
        ft.sybil(shop, random.Random(i), 2, 20)
    return shop.orders[KIND]


def test_api_lists_decides_and_scans(client: TestClient, sf: SessionFactory, world: World) -> None:
    (oid,) = flagged(sf, world)
    h = {"Authorization": f"Bearer {world.merchant['api_key']}"}
    listed = client.get("/review/flags", headers=h).json()
    assert listed["counts"] == {"open": 1, "held": 0, "released": 0, "rejected": 0}
    order = listed["orders"][0]
    assert order["order_id"] == oid and {f["rule"] for f in order["flags"]} >= {"sybil"}
    assert order["chain"][-1]["role"] == "buyer" and order["chain"][0]["via"] == "display"
    r = client.post(f"/review/orders/{oid}/decision", json={"action": "hold"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "held"
    assert r.json()["decided_by"].startswith("merchant key")
    held = client.get("/review/flags", params={"status": "held"}, headers=h).json()
    assert held["orders"][0]["order_id"] == oid
    bad = client.post(f"/review/orders/{oid}/decision", json={"action": "delete"}, headers=h)
    assert bad.status_code == 400 and bad.json()["code"] == "bad_request"
    assert client.get("/review/flags", params={"status": "nope"}, headers=h).status_code == 400
    r = client.post(f"/review/orders/{oid}/decision", json={"action": "reject"}, headers=h)
    assert r.status_code == 200 and r.json()["reject_txn_id"]
    check_books(sf)
    again = client.post(f"/review/orders/{oid}/decision", json={"action": "release"}, headers=h)
    assert (again.status_code, again.json()["code"]) == (409, "review_decided")
    assert "审核状态" in again.json()["message_zh"]
    assert client.post("/review/scan", headers=h).json()["raised"] == 0
    other = provision_world(sf, base="5020", name="Shop B", gateway_id="00000000000000b2")
    hb = {"Authorization": f"Bearer {other.merchant['api_key']}"}
    theirs = client.post(f"/review/orders/{oid}/decision", json={"action": "hold"}, headers=hb)
    assert theirs.status_code == 404
    assert client.get("/review/flags", headers=hb).json()["orders"] == []


def test_owner_decides_on_the_page(client: TestClient, sf: SessionFactory, world: World) -> None:
    a, b = flagged(sf, world, 2)
    assert client.get("/merchant/review", follow_redirects=False).headers["location"] == "/login"
    login(client, world.merchant["api_key"])
    page = client.get("/merchant/review")
    assert page.status_code == 200 and f'data-order="{a}"' in page.text and f'id="reject-{a}"' in page.text
    assert "女巫链" in page.text and "Sybil chain" in page.text and 'href="/merchant/review"' in client.get(
        "/merchant").text
    csrf = form_csrf(page.text)
    forged = client.post(f"/merchant/review/{a}", data={"csrf": "nope", "action": "reject"})
    assert forged.status_code == 403 and "表单已过期" in forged.text
    r = client.post(f"/merchant/review/{a}", data={"csrf": csrf, "action": "reject"}, follow_redirects=False)
    assert r.status_code == 303
    check_books(sf)
    shown = client.get("/merchant/review", params={"status": "rejected"}).text
    assert f'data-order="{a}" data-status="rejected"' in shown and f'data-order="{b}"' not in shown
    late = client.post(f"/merchant/review/{a}", data={"csrf": csrf, "action": "hold"})
    assert late.status_code == 409 and "cannot become held" in late.text
    scanned = client.post("/merchant/review/scan", data={"csrf": csrf})
    assert scanned.status_code == 200 and 'id="scanned"' in scanned.text


def test_viewer_reads_and_staff_go_to_the_till(client: TestClient, sf: SessionFactory, world: World,
                                               clock: Clock) -> None:
    (a,) = flagged(sf, world)
    accept(client, invite_code(sf, world, users.VIEWER, int(clock() * 1000)), "viewer-1")
    page = client.get("/merchant/review")
    assert page.status_code == 200 and f'data-order="{a}"' in page.text
    assert 'id="read-only"' in page.text and f'id="hold-{a}"' not in page.text
    csrf = form_csrf(client.get("/merchant").text)
    refused = client.post(f"/merchant/review/{a}", data={"csrf": csrf, "action": "release"})
    assert refused.status_code == 403 and refused.json()["code"] == "owner_only"
    client.cookies.clear()
    accept(client, invite_code(sf, world, users.STAFF, int(clock() * 1000)), "staff-1")
    assert client.get("/merchant/review", follow_redirects=False).headers["location"] == "/till"

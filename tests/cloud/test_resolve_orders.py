"""Code resolution, share chains and orders through the HTTP API."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from cloud.services.merchants import create_merchant
from cloud.store.engine import SessionFactory
from cloud.store.models import Entry, Payout
from protocol.keys import rotation_key
from protocol.rotation import Rotor, format_code, window
from tests.cloud.conftest import Clock, World

PERIOD = 60


def rotor(world: World, i: int = 0) -> Rotor:
    d, c = world.devices[i], world.campaign
    return Rotor(rotation_key(bytes.fromhex(d["key"])), d["slot"], c["slots"], c["digits"])


def code_at(world: World, w: int, i: int = 0) -> str:
    return format_code(world.campaign["base_code"], rotor(world, i).value(w), world.campaign["digits"])


def test_current_and_neighbour_windows_resolve(client: TestClient, world: World, clock: Clock) -> None:
    w = window(clock.t, PERIOD)
    first = None
    for dw in (0, -1, 1):
        r = client.get(f"/r/{code_at(world, w + dw)}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["device_id"] == world.devices[0]["device_id"]
        assert body["base_code"] == "4919" and body["campaign"] == world.campaign["campaign_id"]
        assert body["landing"] == {"zh": "Shop A 欢迎", "en": "Welcome to Shop A"}
        # the visitor token is in the cookie only (issue 12), set once
        assert "visitor" not in body
        assert ("mcode_visitor" in r.headers.get("set-cookie", "")) == (first is None)
        first = first or client.cookies.get("mcode_visitor")
        # when windows collide (probability 1/M) the nearest one is reported
        assert body["window"] in {w + dw, w, w - 1, w + 1}
    r2 = client.get(f"/r/{code_at(world, w, 1)}")
    assert r2.json()["device_id"] == world.devices[1]["device_id"]
    # the same client keeps its visitor token
    assert "set-cookie" not in r2.headers and client.cookies.get("mcode_visitor") == first


def test_two_windows_away_is_expired(client: TestClient, sf: SessionFactory, clock: Clock) -> None:
    from tests.cloud.conftest import provision_world
    world = provision_world(sf, base="7777", digits=4, slots=10)
    rot = rotor(world)
    # choose a moment whose w±2 values differ from every accepted one (collisions are 1/M each)
    w = window(clock.t, PERIOD)
    while {rot.secret(w + 2), rot.secret(w - 2)} & {rot.secret(w - 1), rot.secret(w), rot.secret(w + 1)}:
        w += 1
    clock.t = w * PERIOD + 1
    for dw in (2, -2):
        r = client.get(f"/r/{code_at(world, w + dw)}")
        assert r.status_code == 410, r.text
        assert r.json()["code"] == "code_expired" and r.json()["message"]


def test_unknown_and_malformed(client: TestClient, world: World) -> None:
    r = client.get("/r/5555-12")
    assert (r.status_code, r.json()["code"]) == (404, "unknown_code")
    r = client.get("/r/4919-123456")  # well-formed share code nobody holds
    assert (r.status_code, r.json()["code"]) == (404, "unknown_code")
    r = client.get("/r/4919-39")  # slot 3 has no device in this campaign (2 devices: slots 0, 1)
    assert (r.status_code, r.json()["code"]) == (404, "unknown_code")
    # "4919" (a bare base code) and "４９１９-12" (full-width) are codes since issue 13: test_shopper.py
    for bad in ("abc-12", "4919-", "-12", "4919-1a", "4919-123", "4919-1-2"):
        r = client.get(f"/r/{bad}")
        assert r.status_code == 400, bad
        assert r.json()["code"] == "malformed_code" and r.json()["message"]


def enter(client: TestClient, code: str, visitor: str | None = None) -> dict[str, Any]:
    client.cookies.clear()
    if visitor:
        client.cookies.set("mcode_visitor", visitor)
    r = client.get(f"/r/{code}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def share(client: TestClient, entry_id: str) -> str:
    r = client.post(f"/entries/{entry_id}/share")
    assert r.status_code == 201, r.text
    code: str = r.json()["share_code"]
    return code


def order(client: TestClient, key: str, idem: str, entry_id: str, amount: int = 5000) -> Any:
    return client.post("/orders", json={"entry_id": entry_id, "amount_minor": amount},
                       headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem})


def test_share_chain_depth_3_red_balloon(client: TestClient, world: World, clock: Clock,
                                         sf: SessionFactory) -> None:
    a = enter(client, code_at(world, window(clock.t, PERIOD)))  # A types the display's code
    assert a["via"] == "display"
    code_a = share(client, a["entry_id"])
    assert code_a.startswith("4919-") and len(code_a) == 11
    assert share(client, a["entry_id"]) == code_a  # asking again gives the same personal code
    b = enter(client, code_a)
    assert b["via"] == "share" and b["device_id"] is None
    c = enter(client, share(client, b["entry_id"]))
    d = enter(client, share(client, c["entry_id"]))  # D, the shopper, came through C

    key = world.merchant["api_key"]
    r = order(client, key, "order-1", d["entry_id"])
    assert r.status_code == 201, r.text
    ans = r.json()
    assert ans["pool_minor"] == 1000 and ans["rule"] == "red-balloon"
    assert [p["amount_minor"] for p in ans["payouts"]] == [500, 250, 125]
    assert ans["charity_minor"] == 125
    # closest to the shopper first: C, then B, then A
    with sf() as s:
        parents = {e.id: e.parent_participant_id for e in s.scalars(select(Entry))}
        payouts = s.scalars(select(Payout).order_by(Payout.level)).all()
    assert [p["participant_id"] for p in ans["payouts"]] == [parents[d["entry_id"]], parents[c["entry_id"]],
                                                            parents[b["entry_id"]]]
    assert sum(p.amount_minor for p in payouts) == 1000
    assert [(p.level, p.participant_id is None) for p in payouts] == [(0, True), (1, False), (2, False),
                                                                       (3, False)]

    # A came straight from the display: the whole pool goes to charity
    r = order(client, key, "order-2", a["entry_id"])
    assert r.json()["payouts"] == [] and r.json()["charity_minor"] == 1000


def test_order_idempotency(client: TestClient, world: World, clock: Clock, sf: SessionFactory) -> None:
    e = enter(client, code_at(world, window(clock.t, PERIOD)))
    b = enter(client, share(client, e["entry_id"]))
    key = world.merchant["api_key"]
    first = order(client, key, "idem-42", b["entry_id"])
    again = order(client, key, "idem-42", b["entry_id"])
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    with sf() as s:
        assert len(s.scalars(select(Payout)).all()) == 2  # one payout + charity, not twice
    clash = order(client, key, "idem-42", b["entry_id"], amount=1)
    assert (clash.status_code, clash.json()["code"]) == (409, "idempotency_conflict")
    missing = client.post("/orders", json={"entry_id": b["entry_id"], "amount_minor": 5},
                          headers={"Authorization": f"Bearer {key}"})
    assert (missing.status_code, missing.json()["code"]) == (400, "bad_idempotency_key")
    # another merchant can neither see nor order against this entry, even with the same key
    other = create_merchant(sf, "Shop B")
    r = order(client, other["api_key"], "idem-42", b["entry_id"])
    assert (r.status_code, r.json()["code"]) == (404, "unknown_entry")
    r = order(client, "mk_wrong", "idem-43", b["entry_id"])
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    r = client.post("/entries/nope/share")
    assert (r.status_code, r.json()["code"]) == (404, "unknown_entry")

"""Tenant isolation: merchant A's keys, walked over every endpoint of the OpenAPI document, against
merchant B's objects. Each answer is 403 or 404, and lists never show B's objects. A new endpoint
without a case here fails the walk, so the walk stays complete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.services import auth, checkout
from cloud.store.engine import SessionFactory
from protocol.rotation import window
from tests.cloud.conftest import ADMIN_KEY, Clock, World, provision_world
from tests.cloud.test_resolve_orders import PERIOD, code_at, enter, share
from tests.cloud.test_sales import click_token

GW_B = "00000000000000b2"


@dataclass
class Tenant:
    world: World
    keys: dict[str, str]  # role -> api key
    ids: dict[str, Any]


def _tenant(client: TestClient, sf: SessionFactory, clock: Clock, base: str, name: str, gw: str) -> Tenant:
    w = provision_world(sf, base=base, name=name, gateway_id=gw)
    mid = w.merchant["merchant_id"]
    keys = {auth.MERCHANT: w.merchant["api_key"],
            auth.TECHNICIAN: str(auth.issue_key(sf, auth.TECHNICIAN, mid)["api_key"]),
            auth.GATEWAY: str(auth.issue_key(sf, auth.GATEWAY, mid, gateway_id=gw)["api_key"])}
    h = {"Authorization": f"Bearer {keys[auth.MERCHANT]}"}
    loc = client.post("/locations", json={"name": f"{name} floor 1"}, headers=h).json()
    client.cookies.clear()
    a = enter(client, code_at(w, window(clock.t, PERIOD)))
    b = enter(client, share(client, a["entry_id"]))
    share(client, b["entry_id"])
    order = client.post("/orders", json={"entry_id": b["entry_id"], "amount_minor": 100},
                        headers={**h, "Idempotency-Key": f"{name}-1"}).json()
    key_id = auth.list_keys(sf, mid)[-1]["key_id"]
    click = click_token(sf, b["entry_id"], w.campaign["campaign_id"], int(clock.t * 1000), f"click-{name}")
    pay = checkout.issue(sf, b["entry_id"], int(clock.t * 1000))["code"]
    return Tenant(w, keys, {
        "campaign_id": w.campaign["campaign_id"], "location_id": loc["location_id"],
        "device_id": w.devices[0]["device_id"], "entry_id": b["entry_id"], "order_id": order["order_id"],
        "participant_id": order["payouts"][0]["participant_id"], "key_id": key_id, "merchant_id": mid,
        "gateway_id": gw, "click_token": click, "checkout_code": pay,
        "payout_id": _payout(sf, order["order_id"]), "settlement_id": _settlement(sf, mid, order, clock)})


def _settlement(sf: SessionFactory, mid: int, order: dict[str, Any], clock: Clock) -> int:
    """The order's sharers paid, as if its hold had passed and any review flag been released."""
    from sqlalchemy import update

    from cloud.services import payouts
    from cloud.store.models import FraudFlag
    with sf.begin() as s:
        s.execute(update(FraudFlag).where(FraudFlag.order_id == order["order_id"]).values(status="released"))
    later = order["due_at_ms"] + 1
    return int(payouts.settle(sf, mid, f"walk-{mid}", None, later, "test")[0]["settlement_id"])


def _payout(sf: SessionFactory, order_id: int) -> int:
    from sqlalchemy import select

    from cloud.store.models import Payout

    with sf() as s:
        return int(s.scalars(select(Payout.id).where(Payout.order_id == order_id, Payout.level == 1)).one())


# Endpoints anyone may call, and why that leaks nothing about a tenant.
PUBLIC = {
    "GET /healthz": "no data",
    "GET /r/{code}": "codes are public; rate-limited",
    "POST /entries/{entry_id}/share": "entry ids are 128-bit secrets held by the shopper",
    "GET /me/earnings": "by the caller's own visitor cookie only",
    "GET /e/{entry_id}/pay": "entry ids are 128-bit secrets held by the shopper; rate-limited",
    "GET /log/checkpoint": "a signed tree size and root hash; rate-limited",
    "GET /log/proof/inclusion": "hashes only; rate-limited",
    "GET /log/proof/consistency": "hashes only; rate-limited",
    "POST /log/cosignatures": "kept only if a configured witness signed a checkpoint of this log",
    "GET /me/payouts/{payout_id}/proof": "by the caller's own visitor cookie only",
}
# Bodies that point a create call at B's objects (path-free endpoints that take ids).
BODIES: dict[str, Any] = {
    "POST /campaigns": lambda b: {"merchant_id": b["merchant_id"], "base_code": "555", "slots": 4,
                                  "digits": 2, "period_s": 60, "pool_minor": 10, "label_zh": "x",
                                  "label_en": "x"},
    "POST /locations": lambda b: {"merchant_id": b["merchant_id"], "name": "B's back room"},
    "POST /devices": lambda b: {"campaign_id": b["campaign_id"]},
    "POST /devices/{device_id}/install": lambda b: {"location_id": b["location_id"]},
    "POST /keys": lambda b: {"merchant_id": b["merchant_id"], "role": "technician"},
    "POST /orders": lambda b: {"entry_id": b["entry_id"], "amount_minor": 100},
    "POST /sales/online": lambda b: {"click_token": b["click_token"], "amount_minor": 100},
    "POST /sales/till": lambda b: {"checkout_code": b["checkout_code"], "amount_minor": 100},
    "PATCH /campaigns/{campaign_id}": lambda b: {"pool_minor": 1},
    "PUT /campaigns/{campaign_id}/draft": lambda b: {"pool_minor": 1},
    "POST /sharers/{participant_id}/account": lambda b: {"account_ref": "member 7"},
    "POST /payouts/settlements": lambda b: {"participant_ids": [b["participant_id"]]},
    "POST /review/orders/{order_id}/decision": lambda b: {"action": "hold"},
    "POST /gateways/{gateway_id}/rotate": lambda b: {"public_key": "3d4017c3e843895a92b70aa74d1b7ebc9c982c"
                                                                   "cf2ec4968cc0cd55f12af4660c"},
}
# Query parameters naming B's tenant (admin-only parameters a merchant key must not use).
QUERIES = {"merchant_id", "gateway_id"}


def _fill(path: str, ids: dict[str, Any]) -> str:
    for k, v in ids.items():
        path = path.replace("{" + k + "}", str(v))
    assert "{" not in path, f"no id for {path}: add it to Tenant.ids"
    return path


@pytest.fixture
def tenants(client: TestClient, sf: SessionFactory, clock: Clock) -> tuple[Tenant, Tenant]:
    a = _tenant(client, sf, clock, "4919", "Shop A", "00000000000000a1")
    b = _tenant(client, sf, clock, "5020", "Shop B", GW_B)
    client.cookies.clear()
    return a, b


def _b_ids_in(text: str, b: Tenant) -> list[str]:
    """B's identifying strings that appear in an answer meant for A."""
    marks = [b.ids["device_id"], b.ids["entry_id"], "Shop B", "5020-", b.world.devices[0]["key"]]
    return [m for m in marks if m in text]


def test_every_endpoint_as_a_against_b(client: TestClient, tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    spec = client.get("/openapi.json").json()
    walked: set[str] = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            name = f"{method.upper()} {path}"
            if name in PUBLIC:
                continue
            url = _fill(path, b.ids)
            params = {q["name"]: b.ids[q["name"]] for q in op.get("parameters", [])
                      if q["in"] == "query" and q["name"] in QUERIES}
            body = BODIES[name](b.ids) if name in BODIES else None
            for role, key in a.keys.items():
                headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "walk-1"}
                r = client.request(method.upper(), url, params=params, json=body, headers=headers)
                if "{" in path or params or body is not None:
                    assert r.status_code in (403, 404), (name, role, r.status_code, r.text[:300])
                else:  # a list or page of A's own: fine, or refused for the role
                    assert r.status_code in (200, 400, 403, 404), (name, role, r.status_code, r.text[:300])
                assert not _b_ids_in(r.text, b), (name, role, _b_ids_in(r.text, b))
                if r.status_code >= 400:
                    assert r.json()["code"] and r.json()["message"], (name, role)
                walked.add(name)
            if method == "get" and "{" in path and not path.startswith(("/admin", "/gateway")):
                # the refusal is about the tenant: A's merchant key reads A's own object
                mine = {"Authorization": f"Bearer {a.keys['merchant']}"}
                own = client.get(_fill(path, a.ids), headers=mine)
                assert own.status_code == 200, (name, own.status_code, own.text[:300])
    print(f"walked {len(walked)} endpoints x {len(a.keys)} roles")
    must = {"POST /orders", "POST /orders/{order_id}/refund", "GET /orders/{order_id}",
            "GET /ledger/sharers/{participant_id}", "GET /ledger/campaigns/{campaign_id}",
            "PATCH /campaigns/{campaign_id}", "POST /campaigns/{campaign_id}/release",
            "PUT /campaigns/{campaign_id}/draft", "POST /campaigns/{campaign_id}/publish",
            "GET /campaigns/{campaign_id}/versions",
            "POST /devices/{device_id}/key", "POST /devices/{device_id}/install", "DELETE /keys/{key_id}",
            "GET /entries/{entry_id}/chain",
            "POST /sharers/{participant_id}/account",
            "GET /gateway/devices", "GET /merchant/stats.json", "POST /admin/merchants",
            "POST /gateways/{gateway_id}/revoke", "POST /gateways/{gateway_id}/rotate",
            "POST /sales/online", "POST /sales/till", "GET /payouts/due",
            "POST /payouts/settlements", "GET /payouts/settlements",
            "GET /payouts/settlements/{settlement_id}", "GET /payouts/sharers/{participant_id}",
            "GET /review/flags",
            "POST /review/orders/{order_id}/decision", "POST /review/scan"}
    assert must <= walked, must - walked


def test_public_endpoints_are_the_listed_ones(client: TestClient) -> None:
    """Every endpoint that answers without a key is in PUBLIC, with its reason."""
    spec = client.get("/openapi.json").json()
    open_ = set()
    for path, ops in spec["paths"].items():
        for method in ops:
            url = path.replace("{code}", "4919-00").replace("{", "").replace("}", "")
            r = client.request(method.upper(), url, follow_redirects=False)
            if r.status_code != 401 and r.headers.get("location") != "/login":  # the page: to its login
                open_.add(f"{method.upper()} {path}")
    assert open_ - set(PUBLIC) == set()


def test_admin_reaches_every_tenant(client: TestClient, tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    h = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for t in (a, b):
        r = client.get(f"/campaigns/{t.ids['campaign_id']}", headers=h)
        assert r.status_code == 200 and r.json()["merchant_id"] == t.ids["merchant_id"]
    r = client.get("/devices", headers=h)
    assert (r.status_code, r.json()["code"]) == (400, "merchant_required")
    r = client.get("/devices", params={"merchant_id": b.ids["merchant_id"]}, headers=h)
    assert [d["device_id"] for d in r.json()["devices"]] == [d["device_id"] for d in b.world.devices]


# -- the console's session (cookie) routes ------------------------------------------------------
# Found in the app's routes, in the OpenAPI document or not: every route under CONSOLE_PREFIXES is
# walked with A's signed-in session (owner, then staff) on B's ids; every other route outside the
# document must be in NOT_CONSOLE with its reason. A new console route is walked without an entry
# here (one with a new id in its path fails `_fill` until Tenant.ids has that id).
CONSOLE_PREFIXES = ("/merchant", "/till")
NOT_CONSOLE = {
    "/": "the shopper's code form", "/go/{entry_id}": "the shopper's own entry (128-bit secret)",
    "/c/{base}": "a campaign's public landing", "/c/{base}/share": "a shopper's share of a public code",
    "/e/{entry_id}": "the shopper's own entry (128-bit secret)", "/me": "the visitor cookie's own page",
    "/me/saved": "the visitor cookie's own", "/me/recovery": "the visitor cookie's own",
    "/me/phone": "the visitor cookie's own", "/login": "signs in; no tenant id",
    "/logout": "ends the caller's own session", "/invite": "takes a one-time code, no tenant id",
    "/shared": "takes a link's code, no tenant id", "/docs": "the API's page",
    "/openapi.json": "the API's document",
}
# Form fields that point a session route at B's objects (routes whose ids travel in the body).
FORMS: dict[str, Any] = {
    "POST /till": lambda b: {"code": b["checkout_code"], "amount": "1", "idem": "walk-till"},
    "POST /till/refund": lambda b: {"order": str(b["order_id"])},
    "POST /merchant/review/{order_id}": lambda b: {"action": "hold"},
}


def _app_routes(routes: Any, prefix: str = "") -> Any:
    """(method, path, in the OpenAPI document) of every endpoint, through included routers."""
    from fastapi.routing import APIRoute
    for r in routes:
        if isinstance(r, APIRoute):
            for m in sorted((r.methods or set()) - {"HEAD"}):
                yield m, prefix + r.path, r.include_in_schema
        elif hasattr(r, "original_router"):  # FastAPI 0.165's _IncludedRouter
            yield from _app_routes(r.original_router.routes, prefix + r.include_context.prefix)
        elif getattr(r, "path", None) == "/openapi.json":
            yield "GET", r.path, False


def _session_of(client: TestClient, sf: SessionFactory, t: Tenant, role: str, clock: Clock) -> str:
    """Sign the client in as `role` of tenant t; returns the session's CSRF token."""
    from cloud.services import users
    from tests.cloud.test_console_access import accept, invite_code
    from tests.cloud.test_sessions import form_csrf, login
    client.cookies.clear()
    if role == users.OWNER:
        assert login(client, t.keys[auth.MERCHANT]).status_code == 303
    else:
        code = invite_code(sf, t.world, role, int(clock() * 1000))
        assert accept(client, code, f"{role}-{t.ids['merchant_id']}").status_code == 303
    return form_csrf(client.get("/till").text)


def test_every_console_session_route_as_a_against_b(client: TestClient, sf: SessionFactory, clock: Clock,
                                                    tenants: tuple[Tenant, Tenant]) -> None:
    from cloud.services import shared_links, users
    a, b = tenants
    for t in (a, b):  # ids only the console has
        link = shared_links.create(sf, t.ids["merchant_id"], "walk", int(clock.t * 1000))
        t.ids["link_id"] = link["link_id"]
    routes = set(_app_routes(client.app.routes))  # type: ignore[attr-defined]
    console = sorted((m, p) for m, p, _ in routes if p.startswith(CONSOLE_PREFIXES))
    stray = {p for _, p, in_doc in routes if not in_doc and not p.startswith(CONSOLE_PREFIXES)}
    stray -= set(NOT_CONSOLE)
    assert not stray, f"routes outside the API document that are neither console routes nor listed: {stray}"
    walked: set[str] = set()
    wrong: list[tuple[str, str, int, str]] = []
    for role in (users.OWNER, users.STAFF):
        csrf = _session_of(client, sf, a, role, clock)
        for method, path in console:
            name = f"{method} {path}"
            form = FORMS[name](b.ids) if name in FORMS else None
            r = client.request(method, _fill(path, b.ids), data={"csrf": csrf, **(form or {})},
                               follow_redirects=False) if method != "GET" else client.get(
                _fill(path, b.ids), follow_redirects=False)
            if "{" in path or form is not None:
                if not (r.status_code in (403, 404) or (role == users.STAFF and r.status_code == 303)):
                    wrong.append((name, role, r.status_code, r.headers.get("location", "")))
                walked.add(name)
            assert not _b_ids_in(r.text, b), (name, role, _b_ids_in(r.text, b))
    assert not wrong, wrong  # every session route refuses B's ids (staff may be sent to the till)
    with_ids = {f"{m} {p}" for m, p in console if "{" in p or f"{m} {p}" in FORMS}
    assert walked == with_ids, with_ids - walked
    # the refusal is about the tenant: A's owner reads A's own objects through the same routes
    _session_of(client, sf, a, users.OWNER, clock)
    for method, path in console:
        if method == "GET" and "{" in path:
            own = client.get(_fill(path, a.ids), follow_redirects=False)
            assert own.status_code == 200, (path, own.status_code, own.text[:300])
    assert {"POST /merchant/shared-links/{link_id}/revoke", "POST /till/refund"} <= walked
    from sqlalchemy import select

    from cloud.store.models import Order
    with sf() as s:  # and nothing of B's was changed on the way
        assert s.scalar(select(Order.status).where(Order.id == b.ids["order_id"])) == "placed"
    assert shared_links.live(sf, b.ids["link_id"])

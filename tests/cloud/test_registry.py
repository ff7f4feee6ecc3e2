"""Registry and roles: what each key may do, renting and releasing base codes, campaign dates,
per-campaign reward rules."""

from __future__ import annotations

from fastapi.testclient import TestClient

from protocol.rotation import window
from tests.cloud.conftest import ADMIN_KEY, Clock, World
from tests.cloud.test_resolve_orders import PERIOD, code_at, enter, share


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _key(client: TestClient, merchant_key: str, role: str, **more: str) -> str:
    r = client.post("/keys", json={"role": role, **more}, headers=_h(merchant_key))
    assert r.status_code == 201, r.text
    return str(r.json()["api_key"])


def test_roles(client: TestClient, world: World, clock: Clock) -> None:
    mk = world.merchant["api_key"]
    cid = world.campaign["campaign_id"]
    tech = _key(client, mk, "technician", label="Li, field tech")
    gw = _key(client, mk, "gateway", gateway_id=world.gateway_id)
    # a technician registers a device and gets its flashing config, key included, once; nothing about money
    r = client.post("/devices", json={"campaign_id": cid, "label": "shelf 9"}, headers=_h(tech))
    assert r.status_code == 201 and len(r.json()["key"]) == 64
    dev = r.json()["device_id"]
    assert client.get(f"/devices/{dev}/config", headers=_h(tech)).status_code == 404  # no key is read back
    assert "key" not in client.get(f"/devices/{dev}", headers=_h(tech)).json()
    entry = enter(client, code_at(world, window(clock.t, PERIOD)))
    for method, url in (("POST", "/orders"), ("GET", f"/ledger/campaigns/{cid}"), ("POST", "/keys"),
                        ("PATCH", f"/campaigns/{cid}"), ("GET", "/merchant/stats.json")):
        body = {"entry_id": entry["entry_id"], "amount_minor": 1} if url == "/orders" else {}
        r = client.request(method, url, json=body, headers={**_h(tech), "Idempotency-Key": "t-1"})
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), (method, url)
    # a gateway key reads its own command keys, never device keys, and nothing else
    r = client.get("/gateway/devices", headers=_h(gw))
    assert r.status_code == 200 and {d["device_id"] for d in r.json()["devices"]} >= {dev}
    assert all("gateway_key" in d and "key" not in d for d in r.json()["devices"])
    assert client.get("/campaigns", headers=_h(gw)).status_code == 403
    # merchants cannot mint admin keys; admins can; a revoked key is refused at once
    assert client.post("/keys", json={"role": "admin"}, headers=_h(mk)).status_code == 403
    r = client.post("/admin/keys", json={"role": "admin", "label": "ops"}, headers=_h(ADMIN_KEY))
    assert r.status_code == 201
    assert client.get("/campaigns", params={"merchant_id": world.merchant["merchant_id"]},
                      headers=_h(r.json()["api_key"])).status_code == 200
    tech_id = [k for k in client.get("/keys", headers=_h(mk)).json()["keys"] if k["role"] == "technician"][0]
    assert client.delete(f"/keys/{tech_id['key_id']}", headers=_h(mk)).status_code == 200
    r = client.get("/devices", headers=_h(tech))
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")


def test_base_code_rented_released_rented_again(client: TestClient, world: World, clock: Clock) -> None:
    mk = world.merchant["api_key"]
    body = {"base_code": "4919", "slots": 4, "digits": 2, "period_s": 60, "pool_minor": 1,
            "label_zh": "新", "label_en": "New"}
    r = client.post("/campaigns", json=body, headers=_h(mk))
    assert (r.status_code, r.json()["code"]) == (409, "base_code_taken")
    code = code_at(world, window(clock.t, PERIOD))
    assert client.get(f"/r/{code}").status_code == 200
    cid = world.campaign["campaign_id"]
    r = client.post(f"/campaigns/{cid}/release", headers=_h(mk))
    assert r.status_code == 200 and r.json()["released_at_ms"]
    assert client.post(f"/campaigns/{cid}/release", headers=_h(mk)).json() == r.json()
    r = client.get(f"/r/{code}")
    assert (r.status_code, r.json()["code"]) == (404, "unknown_code")  # released: nobody answers
    r = client.patch(f"/campaigns/{cid}", json={"pool_minor": 5}, headers=_h(mk))
    assert (r.status_code, r.json()["code"]) == (409, "campaign_released")
    r = client.post("/campaigns", json=body, headers=_h(mk))
    assert r.status_code == 201 and r.json()["base_code"] == "4919" and r.json()["campaign_id"] != cid


def test_campaign_dates_landing_and_rule(client: TestClient, world: World, clock: Clock) -> None:
    mk = world.merchant["api_key"]
    cid = world.campaign["campaign_id"]
    now_ms = int(clock.t * 1000)
    r = client.patch(f"/campaigns/{cid}", json={"starts_at_ms": now_ms + 60_000, "landing_zh": "欢迎光临",
                                                "landing_en": "Welcome", "rule": "geometric",
                                                "rule_params": {"a": "0.4", "b": "0.5"}}, headers=_h(mk))
    assert r.status_code == 200, r.text
    assert r.json()["rule"] == "geometric" and r.json()["rule_params"] == {"a": "2/5", "b": "1/2"}
    code = code_at(world, window(clock.t, PERIOD))
    r = client.get(f"/r/{code}")
    assert (r.status_code, r.json()["code"]) == (410, "campaign_not_started")
    assert r.json()["message_zh"]
    clock.t += 61
    r = client.get(f"/r/{code_at(world, window(clock.t, PERIOD))}")
    assert r.status_code == 200 and r.json()["landing_text"] == {"zh": "欢迎光临", "en": "Welcome"}
    b = enter(client, share(client, r.json()["entry_id"]))
    o = client.post("/orders", json={"entry_id": b["entry_id"], "amount_minor": 10},
                    headers={**_h(mk), "Idempotency-Key": "geo-1"}).json()
    assert [p["amount_minor"] for p in o["payouts"]] == [400] and o["rule"] == "geometric"
    bad = client.patch(f"/campaigns/{cid}", json={"rule": "geometric",
                                                  "rule_params": {"a": "0.9", "b": "0.5"}}, headers=_h(mk))
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_rule")  # a/(1-b) > 1 breaks the budget bound
    r = client.patch(f"/campaigns/{cid}", json={"slots": 9}, headers=_h(mk))  # fixed: devices show codes
    assert (r.status_code, r.json()["code"]) == (400, "bad_request") and "slots" in r.json()["message"]
    r = client.patch(f"/campaigns/{cid}", json={"ends_at_ms": now_ms + 120_000}, headers=_h(mk))
    assert r.status_code == 200
    clock.t += 120
    r = client.get(f"/r/{code_at(world, window(clock.t, PERIOD))}")
    assert (r.status_code, r.json()["code"]) == (410, "campaign_ended")


def test_printed_code_resolves_for_ever(client: TestClient, world: World, clock: Clock) -> None:
    mk = world.merchant["api_key"]
    r = client.post("/devices", json={"campaign_id": world.campaign["campaign_id"], "printed": True,
                                      "label": "window poster"}, headers=_h(mk))
    assert r.status_code == 201, r.text
    dev = r.json()
    slot = dev["slot"]
    assert dev["printed"] is True and dev["code"] == f"4919-{slot:02d}"  # value = slot + 4 * 0
    for dt in (0, 3600, 30 * 24 * 3600):  # the same code a month later
        clock.t += dt
        e = client.get(f"/r/{dev['code']}")
        assert e.status_code == 200, e.text
        got = (e.json()["via"], e.json()["device_id"], e.json()["window"])
        assert got == ("printed", dev["device_id"], None)
    r = client.get(f"/r/4919-{slot + 4:02d}")  # the slot's other values are nobody's
    assert (r.status_code, r.json()["code"]) == (404, "unknown_code")
    b = enter(client, share(client, e.json()["entry_id"]))
    assert b["root_device_id"] == dev["device_id"] and b["depth"] == 1
    listed = client.get(f"/devices/{dev['device_id']}", headers=_h(mk)).json()
    assert listed["code"] == dev["code"]

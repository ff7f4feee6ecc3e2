"""Admin provisioning over HTTP, the merchant page and its tenant isolation."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from cloud.services.ingest import ingest
from cloud.store import vault
from cloud.store.engine import SessionFactory
from cloud.store.models import Device
from protocol import batch as pbatch
from protocol import record
from protocol.keys import gateway_key
from tests.cloud.conftest import ADMIN_KEY, World, provision_world
from tests.cloud.mqtt_helpers import records
from tests.conftest import GATEWAY_ID

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def store(sf: SessionFactory, world: World, bseq: int, recs: list[tuple[bytes, bytes]]) -> None:
    payload = pbatch.sign(pbatch.Batch(bytes.fromhex(world.gateway_id), bseq, 0, recs), world.gw_key)
    res = ingest(sf, pbatch.batch_topic(world.gateway_id), payload)
    assert res.status == pbatch.ACK_STORED and res.rejected == 0


def test_admin_provisioning(client: TestClient) -> None:
    assert client.post("/admin/merchants", json={"name": "X"}).status_code == 401
    bad = client.post("/admin/merchants", json={"name": "X"}, headers={"Authorization": "Bearer nope"})
    assert (bad.status_code, bad.json()["code"]) == (401, "unauthorized")
    m = client.post("/admin/merchants", json={"name": "Tea House"}, headers=ADMIN).json()
    assert m["api_key"].startswith("mk_")
    camp = {"merchant_id": m["merchant_id"], "base_code": "8888", "slots": 4, "digits": 2, "period_s": 30,
            "pool_minor": 800, "label_zh": "茶馆", "label_en": "Tea House"}
    c = client.post("/admin/campaigns", json=camp, headers=ADMIN)
    assert c.status_code == 201, c.text
    dup = client.post("/admin/campaigns", json=camp, headers=ADMIN)
    assert (dup.status_code, dup.json()["code"]) == (409, "base_code_taken")
    six = client.post("/admin/campaigns", json={**camp, "base_code": "8889", "digits": 6}, headers=ADMIN)
    assert (six.status_code, six.json()["code"]) == (400, "bad_digits")
    cid = c.json()["campaign_id"]
    d = client.post("/admin/devices", json={"campaign_id": cid, "label": "counter", "location": "front"},
                    headers=ADMIN)
    assert d.status_code == 201, d.text
    cfg = d.json()
    assert set(cfg) == {"device_id", "key", "base", "slot", "slots", "digits", "period", "label", "name"}
    assert (cfg["base"], cfg["slot"], cfg["slots"], cfg["digits"], cfg["period"]) == ("8888", 0, 4, 2, 30)
    assert len(bytes.fromhex(cfg["key"])) == 32 and len(bytes.fromhex(cfg["device_id"])) == 8
    taken = client.post("/admin/devices", json={"campaign_id": cid, "slot": 0}, headers=ADMIN)
    assert (taken.status_code, taken.json()["code"]) == (409, "slot_taken")
    bad_pk = client.post("/admin/gateways", json={"gateway_id": GATEWAY_ID, "public_key": "00"},
                         headers=ADMIN)
    assert (bad_pk.status_code, bad_pk.json()["code"]) == (400, "bad_public_key")
    g = client.post("/admin/gateways", json={"gateway_id": GATEWAY_ID, "public_key": "ab" * 32,
                                             "merchant_id": m["merchant_id"]}, headers=ADMIN)
    assert g.status_code == 201, g.text
    keys = client.get(f"/admin/gateways/{GATEWAY_ID}/devices", headers=ADMIN).json()["devices"]
    assert len(keys) == 1 and keys[0]["device_id"] == cfg["device_id"]
    expect = gateway_key(bytes.fromhex(cfg["key"]), bytes.fromhex(GATEWAY_ID)).hex()
    assert keys[0]["gateway_key"] == expect and cfg["key"] not in str(keys)
    assert client.get("/healthz").json() == {"status": "ok"}
    nf = client.get("/no/such/route")
    assert (nf.status_code, nf.json()["code"]) == (404, "not_found")
    v = client.post("/admin/campaigns", json={"base_code": "1"}, headers=ADMIN)
    assert (v.status_code, v.json()["code"]) == (400, "bad_request")


def test_merchant_page_counts_and_isolation(client: TestClient, sf: SessionFactory) -> None:
    a = provision_world(sf, base="4919", name="Shop A", n_devices=2)
    b = provision_world(sf, base="5151", name="Shop B", n_devices=1, gateway_id="b1b2b3b4b5b6b7b8")
    a0, a1 = a.devices
    # device a0: taps 1..5 and 8 (6 and 7 lost: 2 gaps) plus a boot; a1: 3 taps; B's device: 4 taps
    store(sf, a, 1, records(a0, [1, 2, 3, 4, 5, 8]) + records(a0, [9], kind=record.KIND_BOOT))
    store(sf, a, 2, records(a1, [1, 2, 3]))
    store(sf, b, 1, records(b.devices[0], [1, 2, 3, 4]))

    ka, kb = a.merchant["api_key"], b.merchant["api_key"]
    sa = client.get("/merchant/stats.json", headers={"Authorization": f"Bearer {ka}"}).json()
    per = {d["device_id"]: d for d in sa["devices"]}
    assert set(per) == {a0["device_id"], a1["device_id"]}
    def nums(dev: dict[str, str]) -> tuple[int, int, int]:
        row = per[dev["device_id"]]
        return row["scans"], row["events"], row["gaps"]

    assert nums(a0) == (6, 7, 2) and nums(a1) == (3, 3, 0)
    assert sa["totals"]["events"] == 10 and sa["totals"]["scans"] == 9

    sb = client.get("/merchant/stats.json", headers={"Authorization": f"Bearer {kb}"}).json()
    assert [d["device_id"] for d in sb["devices"]] == [b.devices[0]["device_id"]]
    assert sb["totals"]["events"] == 4

    page = client.get("/merchant", headers={"Authorization": f"Bearer {ka}"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "扫码" in html and "Scans" in html and "Shop A" in html
    assert f'<tr data-device="{a0["device_id"]}">' in html and '<td class="scans">6</td>' in html
    page_b = client.get("/merchant", headers={"Authorization": f"Bearer {kb}"}).text
    for d in (a0, a1):
        assert d["device_id"] not in page_b
    assert "Shop A" not in page_b and b.devices[0]["device_id"] in page_b
    anon = client.get("/merchant", follow_redirects=False)  # a browser with no login: to /login
    assert (anon.status_code, anon.headers["location"]) == (303, "/login")
    anon_json = client.get("/merchant/stats.json")
    assert (anon_json.status_code, anon_json.json()["code"]) == (401, "unauthorized")
    with sf() as s:  # the device key never appears on the page
        keys = [vault.of(s).open_device_key(d.id, d.key_sealed).hex() for d in s.scalars(select(Device))]
    assert not any(k in html for k in keys)

"""A technician marks a device installed at a location (issue 15, the provisioning's last step):
the device list shows where and when; another tenant's location or device is 404."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cloud.store.engine import SessionFactory
from tests.cloud.conftest import Clock, World, provision_world


def test_install_sets_location_and_time_within_the_tenant(client: TestClient, sf: SessionFactory,
                                                          world: World, clock: Clock) -> None:
    h = {"Authorization": f"Bearer {world.merchant['api_key']}"}
    tech = client.post("/keys", json={"role": "technician"}, headers=h).json()["api_key"]
    t = {"Authorization": f"Bearer {tech}"}
    loc = client.post("/locations", json={"name": "Aisle 3 三号通道"}, headers=h).json()
    dev = world.devices[0]["device_id"]
    before = {d["device_id"]: d for d in client.get("/devices", headers=t).json()["devices"]}
    assert before[dev]["installed_at_ms"] is None
    r = client.post(f"/devices/{dev}/install", json={"location_id": loc["location_id"]}, headers=t)
    assert r.status_code == 200, r.text
    assert (r.json()["location_id"], r.json()["location"]) == (loc["location_id"], "Aisle 3 三号通道")
    assert r.json()["installed_at_ms"] == int(clock() * 1000)
    listed = {d["device_id"]: d for d in client.get("/devices", headers=t).json()["devices"]}
    assert listed[dev]["installed_at_ms"] == int(clock() * 1000)
    other = provision_world(sf, base="6060", name="Shop O", gateway_id="c1c2c3c4c5c6c7c8")
    oh = {"Authorization": f"Bearer {other.merchant['api_key']}"}
    their_loc = client.post("/locations", json={"name": "theirs"}, headers=oh).json()
    assert client.post(f"/devices/{dev}/install", json={"location_id": their_loc["location_id"]},
                       headers=t).status_code == 404
    assert client.post(f"/devices/{other.devices[0]['device_id']}/install",
                       json={"location_id": loc["location_id"]}, headers=t).status_code == 404
    bad = client.post(f"/devices/{dev}/install", json={"location_id": "three"}, headers=t)
    assert bad.status_code == 400 and bad.json()["code"] == "bad_request"

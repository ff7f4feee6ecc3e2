"""Secrets at rest and provisioning (issue 12, part 10; docs/security.md "Secrets at rest and
provisioning"): device root keys sealed under the master key, a key shown once, account
references keyed with an HMAC, long admin keys, printed codes for merchants only, and device
registration that does not tell whether an id exists. Each test says what it regresses."""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text, update
from typer.testing import CliRunner

from cloud.cli.main import app as cloud_cli
from cloud.http.app import create_app
from cloud.services import auth, merchants, sharers
from cloud.services.sharers import account_ref_digest
from cloud.settings import SettingsError, parse_master_keys
from cloud.store import vault
from cloud.store.engine import SessionFactory
from cloud.store.models import Device, Participant, SharerAccount
from protocol.rotation import window
from tests.cloud.conftest import ADMIN_KEY, MASTER_KEY, SETTINGS, Clock, World, provision_world
from tests.cloud.test_resolve_orders import PERIOD, code_at, enter, share

OTHER_KEY = "11" * 32


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _tech(client: TestClient, world: World) -> str:
    r = client.post("/keys", json={"role": "technician"}, headers=_h(world.merchant["api_key"]))
    assert r.status_code == 201, r.text
    return str(r.json()["api_key"])


def test_device_keys_are_sealed_at_rest(engine: Engine, sf: SessionFactory, world: World) -> None:
    """Regresses: device root keys were stored in plaintext (devices.device_key)."""
    dev = world.devices[0]
    key = bytes.fromhex(dev["key"])
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM devices WHERE id = :i"),
                           {"i": dev["device_id"]}).mappings().one()
    assert not any(isinstance(v, bytes | memoryview) and key in bytes(v) for v in row.values())
    sealed = bytes(row["key_sealed"])
    assert len(sealed) == vault.SEALED_DEVICE_KEY_LEN
    v = vault.Vault(parse_master_keys(MASTER_KEY))
    assert v.open_device_key(dev["device_id"], sealed) == key
    with pytest.raises(vault.SealError):  # moved onto another device's row, it does not open
        v.open_device_key(world.devices[1]["device_id"], sealed)
    with pytest.raises(vault.SealError) as exc:  # nor under another master key
        vault.Vault([bytes.fromhex(OTHER_KEY)]).open_device_key(dev["device_id"], sealed)
    assert "MCODE_CLOUD_MASTER_KEY" in exc.value.message and exc.value.message_zh


def test_a_new_master_key_goes_first_and_the_old_one_still_opens(sf: SessionFactory, world: World) -> None:
    """Rotation: with "new,old" every stored key still opens, and new keys seal under the new one."""
    old, new = parse_master_keys(MASTER_KEY)[0], bytes.fromhex(OTHER_KEY)
    ring = vault.Vault([new, old])
    with sf() as s:
        d = s.get(Device, world.devices[0]["device_id"])
        assert d is not None
        assert ring.open_device_key(d.id, d.key_sealed).hex() == world.devices[0]["key"]
    resealed = ring.seal_device_key("00112233aabbccdd", b"k" * 32)
    assert resealed[1:5] == vault.key_id(new) and ring.key_id == vault.key_id(new).hex()
    with pytest.raises(vault.SealError):
        vault.Vault([old]).open_device_key("00112233aabbccdd", resealed)


def test_a_key_is_shown_only_at_provisioning(client: TestClient, sf: SessionFactory, world: World,
                                             clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """Regresses: GET /devices/{id}/config gave any technician key the device key at any time.
    Now the registering answer shows it once, with an audit line (device and master key id, never
    the key); an unused device may get a new key within 24 h, a device in service never."""
    tech = _tech(client, world)
    cid = world.campaign["campaign_id"]
    with caplog.at_level(logging.INFO, logger="cloud.services.provision"):
        r = client.post("/devices", json={"campaign_id": cid, "label": "till"}, headers=_h(tech))
    assert r.status_code == 201 and len(r.json()["key"]) == 64
    dev, key = r.json()["device_id"], r.json()["key"]
    audit = [rec.getMessage() for rec in caplog.records if dev in rec.getMessage()]
    kid = vault.Vault(parse_master_keys(MASTER_KEY)).key_id
    assert len(audit) == 1 and "issued" in audit[0] and kid in audit[0] and "technician" in audit[0]
    assert key not in caplog.text
    for url in (f"/devices/{dev}", "/devices"):
        assert key not in client.get(url, headers=_h(tech)).text
    assert client.get(f"/devices/{dev}/config", headers=_h(tech)).status_code == 404
    # the flashing failed: the unused device gets a new key, shown once more
    r2 = client.post(f"/devices/{dev}/key", headers=_h(tech))
    assert r2.status_code == 200 and r2.json()["device_id"] == dev and r2.json()["key"] != key
    # a device in service (an entry through its code) keeps its key, and it is not shown
    used = world.devices[0]["device_id"]
    enter(client, code_at(world, window(clock.t, PERIOD)))
    r3 = client.post(f"/devices/{used}/key", headers=_h(tech))
    assert (r3.status_code, r3.json()["code"]) == (409, "device_in_service") and "key" not in r3.json()
    with sf.begin() as s:  # nor after the provisioning window: registered 25 h ago
        s.execute(update(Device).where(Device.id == dev)
                  .values(created_at_ms=Device.created_at_ms - 25 * 3600_000))
    r4 = client.post(f"/devices/{dev}/key", headers=_h(tech))
    assert (r4.status_code, r4.json().get("code")) == (409, "device_in_service"), r4.text


def test_rekey_is_within_the_tenant(client: TestClient, sf: SessionFactory, world: World) -> None:
    other = provision_world(sf, base="7311", name="Shop B", gateway_id="0102030405060708")
    r = client.post(f"/devices/{world.devices[0]['device_id']}/key", headers=_h(other.merchant["api_key"]))
    assert (r.status_code, r.json()["code"]) == (404, "unknown_device")


def test_account_references_are_keyed_with_an_hmac(client: TestClient, sf: SessionFactory,
                                                   world: World, clock: Clock) -> None:
    """Regresses: phone and member numbers were kept as bare SHA-256, which anyone holding the
    database reverses by hashing every phone number. Now HMAC(key from the master key, SHA-256)."""
    e = enter(client, code_at(world, window(clock.t, PERIOD)))
    share(client, e["entry_id"])
    with sf() as s:
        pid = s.scalar(select(Participant.id).where(Participant.entry_id == e["entry_id"]))
    ref, mid = "+86 138 0013 8000", world.merchant["merchant_id"]
    mk = world.merchant["api_key"]
    r = client.post(f"/sharers/{pid}/account", json={"account_ref": ref}, headers=_h(mk))
    assert r.status_code == 200, r.text
    with sf() as s:
        stored = s.scalars(select(SharerAccount.ref_hash)).one()
    bare = hashlib.sha256(f"{mid}\n+8613800138000".encode()).hexdigest()
    assert stored != bare
    assert stored == vault.Vault(parse_master_keys(MASTER_KEY)).account_refs(account_ref_digest(mid, ref))[0]


def test_an_account_keyed_under_an_old_master_key_is_found_and_keyed_again(
        engine: Engine, sf: SessionFactory, world: World, clock: Clock, client: TestClient) -> None:
    e = enter(client, code_at(world, window(clock.t, PERIOD)))
    share(client, e["entry_id"])
    with sf() as s:
        pid = s.scalars(select(Participant.id).where(Participant.entry_id == e["entry_id"])).one()
    p = auth.Principal(auth.MERCHANT, world.merchant["merchant_id"])

    first = sharers.link_account(sf, p, pid, "M-0042")
    ring = dataclasses.replace(SETTINGS, master_key=f"{OTHER_KEY},{MASTER_KEY}")
    sf2 = vault.session_factory(engine, ring)
    again = sharers.link_account(sf2, p, pid, " m-0042")
    assert again == first  # the same account, found under the old key
    with sf2() as s:
        digest = account_ref_digest(world.merchant["merchant_id"], "M-0042")
        assert s.scalars(select(SharerAccount.ref_hash)).one() == vault.of(s).account_refs(digest)[0]


def test_the_cloud_refuses_to_start_without_a_master_key_or_with_a_short_admin_key(engine: Engine) -> None:
    """Regresses: any admin key length was accepted; and device keys were stored with no master key."""
    for bad, words in ((dataclasses.replace(SETTINGS, master_key=""), ("MASTER_KEY", "主密钥")),
                       (dataclasses.replace(SETTINGS, master_key="abcd"), ("MASTER_KEY", "32")),
                       (dataclasses.replace(SETTINGS, admin_key="a" * 31), ("ADMIN_KEY", "至少须 32"))):
        with pytest.raises(SettingsError) as exc:
            create_app(bad, engine=engine)
        assert words[0] in exc.value.message and words[1] in str(exc.value)
        assert bad.master_key not in exc.value.message or not bad.master_key
    assert auth.principal_for(vault.session_factory(engine, SETTINGS), "a" * 31, "a" * 31) is None
    assert len(merchants.create_merchant(vault.session_factory(engine, SETTINGS), "x")["api_key"]) >= 32


def test_a_wrong_master_key_stops_the_start(engine: Engine, world: World) -> None:
    with pytest.raises(vault.SealError):
        create_app(dataclasses.replace(SETTINGS, master_key=OTHER_KEY), engine=engine)


def test_cli_without_a_master_key_says_so(tmp_path: object) -> None:
    r = CliRunner().invoke(cloud_cli, ["device-config", "0011223344556677"],
                           env={"MCODE_CLOUD_MASTER_KEY": "", "MCODE_CLOUD_DB_URL": "sqlite://"})
    assert r.exit_code == 2 and "MCODE_CLOUD_MASTER_KEY" in r.output and r.exception is not None
    assert "Traceback" not in r.output


def test_printed_codes_are_for_merchants_only(client: TestClient, world: World) -> None:
    """Regresses: a technician could create a printed (never-rotating) code."""
    body = {"campaign_id": world.campaign["campaign_id"], "printed": True}
    r = client.post("/devices", json=body, headers=_h(_tech(client, world)))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden") and r.json()["message_zh"]
    assert client.post("/devices", json=body, headers=_h(world.merchant["api_key"])).status_code == 201
    r = client.post("/admin/devices", json=body, headers=_h(ADMIN_KEY))
    assert r.status_code == 201


def test_registering_a_device_does_not_tell_whether_an_id_exists(client: TestClient, sf: SessionFactory,
                                                                 world: World) -> None:
    """Regresses: POST /devices with another tenant's device id answered 409, a fresh id 201."""
    other = provision_world(sf, base="7311", name="Shop B", gateway_id="0102030405060708")
    tech_b = _tech(client, other)
    answers = []
    for dev_id in (world.devices[0]["device_id"], "00000000feedf00d"):
        r = client.post("/devices", json={"campaign_id": other.campaign["campaign_id"], "device_id": dev_id},
                        headers=_h(tech_b))
        answers.append((r.status_code, r.json()["code"]))
    assert answers[0] == answers[1] and answers[0][0] in (400, 422)  # the cloud draws ids
    # another tenant's campaign answers exactly like a missing one
    a = client.post("/devices", json={"campaign_id": world.campaign["campaign_id"]}, headers=_h(tech_b))
    b = client.post("/devices", json={"campaign_id": 999_999}, headers=_h(tech_b))
    assert (a.status_code, a.json()) == (b.status_code, b.json()) == (404, b.json())

"""The cloud's side of config down, reports up (cloud/gateway_config.py) on a real database:
sealed device writes, signed gateway configs built from provisioning, verified report storage."""

from __future__ import annotations

from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.errors import ApiError
from cloud.services import gateway_config as gc
from cloud.services import gateway_trust, provision, signing_key
from cloud.store.engine import SessionFactory
from cloud.store.models import GatewayConfigRow
from protocol import command, devconfig, gwconfig, keys
from protocol.hmac256 import HmacKey
from tests.cloud.conftest import World, provision_world

GW = bytes.fromhex("a1a2a3a4a5a6a7a8")


@pytest.fixture
def cloud_key(tmp_path: Path) -> Ed25519PrivateKey:
    return signing_key.signing_key(tmp_path / "cloud.key")


def dev(world: World, i: int) -> tuple[bytes, bytes]:
    d = world.devices[i]
    return bytes.fromhex(d["device_id"]), bytes.fromhex(d["key"])


def test_signing_key_is_made_once_private(tmp_path: Path) -> None:
    p = tmp_path / "data" / "cloud.key"
    k = signing_key.signing_key(p)
    assert p.stat().st_mode & 0o077 == 0
    assert signing_key.public_hex(signing_key.signing_key(p)) == signing_key.public_hex(k)


def test_device_config_write_is_sealed_for_the_device(sf: SessionFactory, world: World) -> None:
    did, dkey = dev(world, 0)
    assert gc.seal_device_config(sf, did.hex(), tx_power=-4, label="Rye")["version"] == 1
    assert gc.seal_device_config(sf, did.hex())["version"] == 2
    cfg, _ = gc.build_config(sf, world.gateway_id, Ed25519PrivateKey.generate())
    blob = next(d.config for d in cfg.devices if d.id == did)
    assert blob is not None
    st, s = devconfig.unseal(HmacKey(keys.config_key(dkey)), did, blob)
    assert st == command.OK and s is not None
    c = world.campaign
    assert (s.version, s.base, s.slot, s.slots, s.digits, s.period, s.label, s.tx_power) == (
        2, c["base_code"], world.devices[0]["slot"], c["slots"], c["digits"], c["period_s"], "Rye", 0)
    with pytest.raises(ApiError, match="bad_device_config"):
        gc.seal_device_config(sf, did.hex(), label="x" * 33)
    with pytest.raises(ApiError, match="bad_device_config"):
        gc.seal_device_config(sf, did.hex(), tx_power=20)
    with pytest.raises(ApiError, match="unknown_device"):
        gc.seal_device_config(sf, "00" * 8)


def test_gateway_config_from_the_database(sf: SessionFactory, world: World,
                                          cloud_key: Ed25519PrivateKey) -> None:
    other = provision_world(sf, base="5000", name="Shop B", n_devices=1, gateway_id="b1b2b3b4b5b6b7b8")
    did0, dkey0 = dev(world, 0)
    did1, dkey1 = dev(world, 1)
    gc.seal_device_config(sf, did1.hex(), tx_power=3)
    cfg, payload = gc.build_config(sf, world.gateway_id, cloud_key, {"label-esp32c3-ssd1680": 4})
    got = gwconfig.accept(payload, cloud_key.public_key(), GW)
    assert got == cfg and got.version == 1
    # The merchant's devices only, each with this gateway's command key, never the device key.
    assert {d.id: d.key for d in got.devices} == {did0: keys.gateway_key(dkey0, GW),
                                                  did1: keys.gateway_key(dkey1, GW)}
    assert dkey0 not in payload and dkey1 not in payload
    assert bytes.fromhex(other.devices[0]["device_id"]) not in payload
    assert [d.config_version for d in sorted(got.devices, key=lambda d: d.id != did1)] == [1, None]
    assert got.firmware == {"label-esp32c3-ssd1680": 4}
    # The next one is newer and keeps the firmware targets unless told otherwise.
    cfg2, payload2 = gc.build_config(sf, world.gateway_id, cloud_key)
    assert gwconfig.accept(payload2, cloud_key.public_key(), GW, 1).firmware == {"label-esp32c3-ssd1680": 4}
    with pytest.raises(gwconfig.GwConfigError, match="stale_version"):
        gwconfig.accept(payload, cloud_key.public_key(), GW, cfg2.version)
    with sf() as s:
        row = s.get(GatewayConfigRow, world.gateway_id)
        assert row is not None and (row.version, row.payload) == (2, payload2)
    with pytest.raises(ApiError, match="unknown_gateway"):
        gc.build_config(sf, "c1c2c3c4c5c6c7c8", cloud_key)


def report(world: World, results: tuple[gwconfig.DeviceResult, ...], ts: int,
           key: Ed25519PrivateKey | None = None, gw: bytes = GW, refused: str = "") -> bytes:
    return gwconfig.sign_report(gwconfig.Report(gw, 1, ts, results, refused), key or world.gw_key)


def test_reports_are_verified_and_stored(sf: SessionFactory, world: World,
                                         cloud_key: Ed25519PrivateKey) -> None:
    did0, _ = dev(world, 0)
    did1, _ = dev(world, 1)
    gc.build_config(sf, world.gateway_id, cloud_key)
    topic = gwconfig.report_topic(world.gateway_id)
    first = (gwconfig.DeviceResult(did0, 1, gwconfig.PENDING),
             gwconfig.DeviceResult(did1, 2, gwconfig.REFUSED, "bad_config_tag", 0))
    gc.store_report(sf, topic, report(world, first, 1000))
    later = (gwconfig.DeviceResult(did0, 1, gwconfig.OK, "", 1),)
    gc.store_report(sf, topic, report(world, later, 2000, refused="stale_version"))
    gc.store_report(sf, topic, report(world, first, 1500))  # an older report arriving late changes nothing
    got = {r.pop("device_id"): r for r in gc.config_results(sf, world.gateway_id)}
    assert got == {did0.hex(): {"version": 1, "status": "ok", "reason": "", "device_version": 1},
                   did1.hex(): {"version": 2, "status": "refused", "reason": "bad_config_tag",
                                "device_version": 0}}
    with sf() as s:
        row = s.get(GatewayConfigRow, world.gateway_id)
        assert row is not None
        assert (row.applied_version, row.refused, row.reported_at_ms) == (1, "stale_version", 2000)

    def refused(t: str, payload: bytes) -> str:
        with pytest.raises(gwconfig.GwConfigError) as e:
            gc.store_report(sf, t, payload)
        return e.value.reason

    assert refused(topic, report(world, later, 3000, key=Ed25519PrivateKey.generate())) == "bad_signature"
    # Another gateway's report (its own topic and key) about our gateway: refused by topic.
    assert refused(gwconfig.report_topic("b1b2b3b4b5b6b7b8"), report(world, later, 3000)) == "wrong_gateway"
    assert refused(gwconfig.report_topic("c1c2c3c4c5c6c7c8"),
                   report(world, later, 3000, gw=bytes.fromhex("c1c2c3c4c5c6c7c8"))) == "unknown_gateway"
    assert refused(topic, cbor2.dumps([1, b"\x00", bytes(64)])) == "malformed_body"
    assert refused(topic, b"\xff") == "malformed_cbor"
    with sf() as s:
        row = s.get(GatewayConfigRow, world.gateway_id)
        assert row is not None and row.reported_at_ms == 2000
    gateway_trust.revoke(sf, world.gateway_id)  # a revoked gateway's genuine report: refused too
    assert refused(topic, report(world, later, 4000)) == "gateway_revoked"


def test_config_for_a_gateway_without_a_merchant_has_every_device(sf: SessionFactory, world: World,
                                                                 cloud_key: Ed25519PrivateKey) -> None:
    from tests.cloud.conftest import public_hex

    provision.create_gateway(sf, "d1d2d3d4d5d6d7d8", public_hex(Ed25519PrivateKey.generate()))
    cfg, _ = gc.build_config(sf, "d1d2d3d4d5d6d7d8", cloud_key)
    assert {d.id.hex() for d in cfg.devices} == {d["device_id"] for d in world.devices}

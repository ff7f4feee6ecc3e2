"""The gateway's apply rules for the cloud's config (gateway/remote_config.py): only the cloud's,
only for this gateway, only newer; persisted across restarts; per-device write results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import config as gconfig
from gateway.collector import Collector
from gateway.remote_config import RemoteConfig, outcome
from gateway.spool import Spool
from protocol import command, devconfig, gwconfig, keys
from protocol.gwconfig import DeviceEntry, DeviceResult, GwConfig, GwConfigError
from protocol.hmac256 import HmacKey
from tests.gateway.helpers import DEV_A, DEV_B, GW_ID

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))


@pytest.fixture(scope="module")
def cloud() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def write(dev: bytes, dkey: bytes, version: int, label: str = "Oat milk 1L") -> bytes:
    s = devconfig.Settings(version, "4919", 1, 4, 2, 60, label, 0)
    return devconfig.seal(HmacKey(keys.config_key(dkey)), dev, s)


def signed(cloud: Ed25519PrivateKey, version: int, writes: dict[bytes, bytes | None] | None = None,
           gw: bytes = GW_ID) -> bytes:
    writes = {DEV_A: write(DEV_A, KEY_A, 1), DEV_B: None} if writes is None else writes
    dkeys = {DEV_A: KEY_A, DEV_B: KEY_B}
    devs = tuple(DeviceEntry(d, keys.gateway_key(dkeys.get(d, bytes(32)), gw), w) for d, w in writes.items())
    return gwconfig.sign(GwConfig(gw, version, 1_763_900_000_000 + version, devs, {"kiosk": 2}), cloud)


def rc(tmp_path: Path, cloud: Ed25519PrivateKey | None) -> RemoteConfig:
    return RemoteConfig(tmp_path / "remote-config.json", GW_ID, None if cloud is None else cloud.public_key())


def test_applies_newer_and_persists_for_a_restart(tmp_path: Path, cloud: Ed25519PrivateKey) -> None:
    r = rc(tmp_path, cloud)
    assert r.load() is None and r.devices() is None and r.version == 0
    changes: list[int] = []
    r.on_change = lambda: changes.append(r.version)
    c = r.offer(signed(cloud, 3))
    assert c is not None and c.version == 3 and changes == [3]
    assert r.devices() == (gconfig.Device(DEV_A, keys.gateway_key(KEY_A, GW_ID)),
                           gconfig.Device(DEV_B, keys.gateway_key(KEY_B, GW_ID)))
    assert r.pending(DEV_A) == write(DEV_A, KEY_A, 1) and r.pending(DEV_B) is None
    assert [x.status for x in r.results()] == [gwconfig.PENDING]
    # The broker hands the retained config over again on reconnect: nothing to do.
    assert r.offer(signed(cloud, 3)) is None
    assert changes == [3]

    again = rc(tmp_path, cloud)
    assert again.load() == c
    assert again.devices() == r.devices() and again.results() == r.results()
    assert again.summary()["firmware"] == {"kiosk": 2}


@pytest.mark.parametrize("case", ["forged", "wrong_gateway", "older", "equal", "garbage", "oversized"])
def test_refusals_change_nothing(tmp_path: Path, cloud: Ed25519PrivateKey, case: str) -> None:
    r = rc(tmp_path, cloud)
    r.offer(signed(cloud, 5))
    before = (tmp_path / "remote-config.json").read_bytes()
    payload, reason = {
        "forged": (signed(Ed25519PrivateKey.generate(), 9), "bad_signature"),
        "wrong_gateway": (signed(cloud, 9, gw=bytes(8)), "wrong_gateway"),
        "older": (signed(cloud, 4), "stale_version"),
        "equal": (signed(cloud, 5, {DEV_A: None}), "stale_version"),
        "garbage": (os.urandom(64), "malformed_cbor"),
        "oversized": (b"\x80" * (gwconfig.MAX_PAYLOAD + 1), "oversized"),
    }[case]
    with pytest.raises(GwConfigError) as e:
        r.offer(payload)
    if case == "garbage":
        assert e.value.reason in ("malformed_cbor", "malformed_envelope")
    else:
        assert e.value.reason == reason
    assert r.version == 5 and r.last_refusal is not None and r.last_refusal[1] == e.value.reason
    assert (tmp_path / "remote-config.json").read_bytes() == before
    assert len(r.devices() or ()) == 2
    # The report says why the newer config was not applied.
    _, _, rep = gwconfig.open_report(r.report(Ed25519PrivateKey.generate()))
    assert (rep.applied_version, rep.refused) == (5, e.value.reason)


def test_no_cloud_key_applies_nothing(tmp_path: Path, cloud: Ed25519PrivateKey) -> None:
    r = rc(tmp_path, None)
    with pytest.raises(GwConfigError, match="no_cloud_key"):
        r.offer(signed(cloud, 1))
    assert not (tmp_path / "remote-config.json").exists()


def test_a_state_file_that_does_not_verify_is_not_trusted(tmp_path: Path, cloud: Ed25519PrivateKey) -> None:
    rc(tmp_path, cloud).offer(signed(cloud, 2))
    assert rc(tmp_path, Ed25519PrivateKey.generate()).load() is None  # gateway.toml's key changed
    p = tmp_path / "remote-config.json"
    state = json.loads(p.read_text())
    state["config"] = state["config"][:-2] + ("00" if state["config"][-2:] != "00" else "01")
    p.write_text(json.dumps(state))
    assert rc(tmp_path, cloud).load() is None
    p.write_text("{not json")
    assert rc(tmp_path, cloud).load() is None


@pytest.mark.parametrize(("status", "device_version", "want"), [
    (command.OK, 1, (gwconfig.OK, "")),
    (command.STALE_VERSION, 1, (gwconfig.OK, "already_applied")),  # an earlier reply was lost
    (command.STALE_VERSION, 7, (gwconfig.REFUSED, "stale_version")),  # the device is ahead of the cloud
    (command.BAD_CONFIG_TAG, 0, (gwconfig.REFUSED, "bad_config_tag")),
    (command.BAD_VALUE, 0, (gwconfig.REFUSED, "bad_value")),
    (command.UNKNOWN_OP, 0, (gwconfig.REFUSED, "unknown_op")),
    (command.BUSY, 0, (gwconfig.PENDING, "busy")),
    (command.RATE_LIMITED, 0, (gwconfig.PENDING, "rate_limited")),
    (command.REPLAY, 0, (gwconfig.PENDING, "replay")),
])
def test_outcome_of_a_reply(status: int, device_version: int, want: tuple[str, str]) -> None:
    assert outcome(write(DEV_A, KEY_A, 1), status, device_version) == want


def test_results_follow_replies_and_configs(tmp_path: Path, cloud: Ed25519PrivateKey) -> None:
    r = rc(tmp_path, cloud)
    w1 = write(DEV_A, KEY_A, 1)
    r.offer(signed(cloud, 1, {DEV_A: w1, DEV_B: None}))
    assert r.record_failure(DEV_A, w1, "timeout") == DeviceResult(DEV_A, 1, gwconfig.PENDING, "timeout")
    assert r.pending(DEV_A) == w1
    assert r.record(DEV_A, w1, command.OK, 1) == DeviceResult(DEV_A, 1, gwconfig.OK, "", 1)
    assert r.pending(DEV_A) is None
    restarted = rc(tmp_path, cloud)
    restarted.load()
    assert restarted.results() == [DeviceResult(DEV_A, 1, gwconfig.OK, "", 1)]
    assert restarted.pending(DEV_A) is None

    # A newer config carrying the same write keeps its result; a new write starts pending.
    r.offer(signed(cloud, 2, {DEV_A: w1, DEV_B: None}))
    assert r.results() == [DeviceResult(DEV_A, 1, gwconfig.OK, "", 1)]
    w2 = write(DEV_A, KEY_A, 2, "Rye")
    wb = write(DEV_B, KEY_A, 1)  # sealed with the wrong device's key: the device will say so
    r.offer(signed(cloud, 3, {DEV_A: w2, DEV_B: wb}))
    assert [(x.device_id, x.version, x.status) for x in r.results()] == [(DEV_A, 2, gwconfig.PENDING),
                                                                         (DEV_B, 1, gwconfig.PENDING)]
    assert r.record(DEV_A, w1, command.OK, 1) is None  # a reply to the replaced write: ignored
    assert r.record(DEV_B, wb, command.BAD_CONFIG_TAG, 0) == DeviceResult(DEV_B, 1, gwconfig.REFUSED,
                                                                          "bad_config_tag", 0)
    assert r.pending(DEV_B) is None and r.pending(DEV_A) == w2

    # A device dropped from the allowlist takes its result with it.
    r.offer(signed(cloud, 4, {DEV_A: w2}))
    assert [x.device_id for x in r.results()] == [DEV_A]

    key = Ed25519PrivateKey.generate()
    body, sig, rep = gwconfig.open_report(r.report(key))
    assert gwconfig.verify(body, sig, key.public_key(), gwconfig.REPORT_CONTEXT)
    assert rep.applied_version == 4 and rep.refused == ""
    assert rep.results == (DeviceResult(DEV_A, 2, gwconfig.PENDING),)


def test_collector_allowlist_is_replaced_live(tmp_path: Path) -> None:
    gconfig.generate_key(tmp_path / "gw.key")
    cfg = gconfig.parse({"gateway_id": GW_ID.hex(), "private_key": "gw.key", "spool": "spool.sqlite",
                         "devices": [{"id": DEV_A.hex(), "key": "11" * 32}]}, tmp_path)
    with Spool(cfg.spool_path, GW_ID, cfg.load_private_key()) as spool:
        col = Collector(cfg, spool)
        col.devices[DEV_A.hex()].failures = 3
        new = (gconfig.Device(DEV_A, b"\x22" * 32), gconfig.Device(DEV_B, b"\x33" * 32))
        col.set_devices(new)
        assert col.allow == {DEV_A: new[0], DEV_B: new[1]}
        assert col.devices[DEV_A.hex()].failures == 3  # what it knew of a kept device stays
        assert col.devices[DEV_B.hex()].failures == 0
        col.set_devices(new[1:])
        assert set(col.allow) == {DEV_B} and set(col.devices) == {DEV_B.hex()}


def test_gateway_toml_cloud_key(tmp_path: Path) -> None:
    base: dict[str, object] = {"gateway_id": GW_ID.hex(), "private_key": "gw.key", "spool": "s/spool.sqlite"}
    cfg = gconfig.parse(base, tmp_path)
    assert cfg.cloud_key() is None and cfg.remote_config_file == tmp_path / "s" / "remote-config.json"
    pub = Ed25519PrivateKey.generate().public_key()
    cfg = gconfig.parse({**base, "cloud_public_key": pub.public_bytes_raw().hex(),
                         "remote_config": "rc.json"}, tmp_path)
    assert cfg.cloud_key() == pub and cfg.remote_config_file == tmp_path / "rc.json"
    with pytest.raises(gconfig.ConfigError, match="cloud_public_key"):
        gconfig.parse({**base, "cloud_public_key": "abcd"}, tmp_path)

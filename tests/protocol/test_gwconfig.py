"""Gateway config and report (protocol/gwconfig.py): round trips, and every refusal with its reason."""

from __future__ import annotations

import os

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import devconfig, gwconfig, keys
from protocol.gwconfig import DeviceEntry, DeviceResult, GwConfig, GwConfigError, Report
from protocol.hmac256 import HmacKey

GW = bytes.fromhex("a1a2a3a4a5a6a7a8")
OTHER_GW = bytes.fromhex("b1b2b3b4b5b6b7b8")
DEV_KEY = bytes(range(32))
DEV = bytes.fromhex("0102030405060708")


@pytest.fixture(scope="module")
def cloud() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def blob(version: int = 3) -> bytes:
    s = devconfig.Settings(version, "4919", 3, 4, 2, 60, "Oat milk 1L", -4)
    return devconfig.seal(HmacKey(keys.config_key(DEV_KEY)), DEV, s)


def cfg(version: int = 5, gw: bytes = GW, n: int = 2) -> GwConfig:
    devs = [DeviceEntry(DEV, keys.gateway_key(DEV_KEY, gw), blob())]
    devs += [DeviceEntry(os.urandom(8), os.urandom(32)) for _ in range(n - 1)]
    return GwConfig(gw, version, 1_763_900_000_000, tuple(devs), {"label-esp32c3-ssd1680": 3})


def reason(payload: bytes, key: Ed25519PrivateKey, current: int = 0, gw: bytes = GW) -> str:
    with pytest.raises(GwConfigError) as e:
        gwconfig.accept(payload, key.public_key(), gw, current)
    return e.value.reason


def envelope(body: object, key: Ed25519PrivateKey) -> bytes:
    b = cbor2.dumps(body)
    return cbor2.dumps([1, b, key.sign(gwconfig.SIG_CONTEXT + b)])


def test_round_trip(cloud: Ed25519PrivateKey) -> None:
    c = cfg()
    got = gwconfig.accept(gwconfig.sign(c, cloud), cloud.public_key(), GW, 4)
    assert got == c
    assert got.devices[0].config_version == 3 and got.devices[1].config is None


def test_forged_signature_refused(cloud: Ed25519PrivateKey) -> None:
    forger = Ed25519PrivateKey.generate()
    assert reason(gwconfig.sign(cfg(), forger), cloud) == "bad_signature"
    # A genuine signature over a body altered in flight.
    env = cbor2.loads(gwconfig.sign(cfg(), cloud))
    body = bytearray(env[1])
    body[-1] ^= 1
    assert reason(cbor2.dumps([1, bytes(body), env[2]]), cloud) == "bad_signature"
    # A signature the cloud made for a report, not a config (domain separation).
    b = gwconfig.encode_body(cfg())
    assert reason(cbor2.dumps([1, b, cloud.sign(gwconfig.REPORT_CONTEXT + b)]), cloud) == "bad_signature"


def test_wrong_gateway_refused(cloud: Ed25519PrivateKey) -> None:
    assert reason(gwconfig.sign(cfg(gw=OTHER_GW), cloud), cloud) == "wrong_gateway"


@pytest.mark.parametrize("current", [5, 6, 1000])
def test_older_or_equal_version_refused(cloud: Ed25519PrivateKey, current: int) -> None:
    assert reason(gwconfig.sign(cfg(version=5), cloud), cloud, current=current) == "stale_version"


@pytest.mark.parametrize("payload", [b"", b"\xff", b"\x9f\x01", b"\x82\x01", os.urandom(100)])
def test_malformed_cbor_refused(cloud: Ed25519PrivateKey, payload: bytes) -> None:
    assert reason(payload, cloud) in ("malformed_cbor", "malformed_envelope")


def test_malformed_envelope_refused(cloud: Ed25519PrivateKey) -> None:
    good = cbor2.loads(gwconfig.sign(cfg(), cloud))
    for env in ([2, good[1], good[2]], [1, good[1]], [1, good[1], good[2][:63]], {"a": 1},
                [1, "text", good[2]]):
        assert reason(cbor2.dumps(env), cloud) == "malformed_envelope", env


def test_malformed_body_refused_after_signature(cloud: Ed25519PrivateKey) -> None:
    ok = {"gw": GW, "ver": 5, "iat": 1, "devs": [], "fw": {}}
    assert gwconfig.accept(envelope(ok, cloud), cloud.public_key(), GW).devices == ()
    bad: list[object] = [
        [1, 2], {**ok, "gw": GW[:7]}, {**ok, "ver": -1}, {**ok, "ver": True}, {**ok, "ver": 2**64},
        {k: v for k, v in ok.items() if k != "devs"},
        {**ok, "devs": [{"id": DEV, "key": b"k" * 31}]},
        {**ok, "devs": [{"id": DEV, "key": b"k" * 32, "extra": 1}]},
        {**ok, "devs": [{"id": DEV, "key": b"k" * 32, "cfg": b"\x01short"}]},
        {**ok, "devs": [{"id": DEV, "key": b"k" * 32}, {"id": DEV, "key": b"j" * 32}]},
        {**ok, "fw": {"board": -1}}, {**ok, "fw": {"board": 0x10000}}, {**ok, "fw": {"": 1}},
    ]
    for body in bad:
        assert reason(envelope(body, cloud), cloud) == "malformed_body", body
    # Garbage inside a validly signed envelope.
    b = b"\xff\xfe"
    assert reason(cbor2.dumps([1, b, cloud.sign(gwconfig.SIG_CONTEXT + b)]), cloud) == "malformed_cbor"
    # Unsigned garbage never reaches the body parser.
    assert reason(cbor2.dumps([1, b, bytes(64)]), cloud) == "bad_signature"


def test_oversized_refused(cloud: Ed25519PrivateKey) -> None:
    assert reason(b"\x00" * (gwconfig.MAX_PAYLOAD + 1), cloud) == "oversized"
    many = {"gw": GW, "ver": 5, "iat": 1, "fw": {},
            "devs": [{"id": i.to_bytes(8, "big"), "key": bytes(32)} for i in range(gwconfig.MAX_DEVICES + 1)]}
    assert reason(envelope(many, cloud), cloud) == "oversized"
    with pytest.raises(GwConfigError, match="oversized"):
        gwconfig.sign(GwConfig(GW, 1, 1, tuple(DeviceEntry(i.to_bytes(8, "big"), bytes(32))
                                                for i in range(gwconfig.MAX_DEVICES + 1))), cloud)


def test_the_cloud_cannot_sign_a_config_the_gateway_would_refuse(cloud: Ed25519PrivateKey) -> None:
    with pytest.raises(GwConfigError, match="malformed_body"):
        gwconfig.sign(GwConfig(GW, 1, 1, (DeviceEntry(DEV, bytes(31)),)), cloud)


def test_full_size_config_fits(cloud: Ed25519PrivateKey) -> None:
    """MAX_DEVICES devices, each with a longest config write, stay under MAX_PAYLOAD."""
    s = devconfig.Settings(2**32 - 1, "9" * devconfig.MAX_BASE, 0, 1, 9, 60, "x" * devconfig.MAX_LABEL, 9,
                           "h" * 7)  # the rest of a BLE write
    big = devconfig.seal(HmacKey(bytes(32)), DEV, s)
    assert len(big) == devconfig.MAX_LEN
    c = GwConfig(GW, 1, 1, tuple(DeviceEntry(i.to_bytes(8, "big"), bytes(32), big)
                                 for i in range(gwconfig.MAX_DEVICES)))
    payload = gwconfig.sign(c, cloud)
    assert len(payload) <= gwconfig.MAX_PAYLOAD
    assert gwconfig.accept(payload, cloud.public_key(), GW) == c


def test_report_round_trip_and_signature() -> None:
    gw_key = Ed25519PrivateKey.generate()
    r = Report(GW, 7, 1_763_900_000_000, (
        DeviceResult(DEV, 3, gwconfig.OK, "", 3),
        DeviceResult(OTHER_GW, 2, gwconfig.REFUSED, "bad_config_tag", 0),
        DeviceResult(bytes(8), 1, gwconfig.PENDING)), "stale_version")
    payload = gwconfig.sign_report(r, gw_key)
    body, sig, got = gwconfig.open_report(payload)
    assert got == r
    assert gwconfig.verify(body, sig, gw_key.public_key(), gwconfig.REPORT_CONTEXT)
    assert not gwconfig.verify(body, sig, gw_key.public_key())  # not a config signature
    assert not gwconfig.verify(body, sig, Ed25519PrivateKey.generate().public_key(),
                               gwconfig.REPORT_CONTEXT)
    bad = cbor2.dumps({"gw": GW, "ver": 1, "ts": 1, "devs": [[DEV, 1, "maybe", "", None]]})
    with pytest.raises(GwConfigError, match="malformed_body"):
        gwconfig.open_report(cbor2.dumps([1, bad, bytes(64)]))


def test_topics() -> None:
    assert gwconfig.config_topic(GW.hex()) == "mcode/v0/gw/a1a2a3a4a5a6a7a8/config"
    assert gwconfig.report_topic(GW.hex()) == "mcode/v0/gw/a1a2a3a4a5a6a7a8/report"


def test_protocol_doc_describes_the_formats() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for s in (gwconfig.SIG_CONTEXT.decode(), gwconfig.REPORT_CONTEXT.decode(), "`mcode/v0/gw/{gw}/report`",
              "oversized", "malformed_cbor", "malformed_envelope", "bad_signature", "malformed_body",
              "wrong_gateway", "stale_version", *gwconfig.STATUSES):
        assert s in doc, s

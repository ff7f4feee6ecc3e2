"""The uplink over TLS to a real Mosquitto: certificates made at test time (sim/certs.py), never
committed. The gateway publishes through a TLS listener; a wrong CA, a certificate for another
host, or a missing client certificate where one is required is refused."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from gateway import config as gconfig
from gateway.config import MqttConfig
from gateway.spool import Spool
from gateway.uplink import Uplink
from sim.broker import Broker, BrokerTls
from sim.certs import Ca, CertFiles, make_ca
from sim.cloud_acker import CloudAcker
from tests.conftest import GATEWAY_ID
from tests.gateway.helpers import DEV_A, GW_ID, recs
from tests.wait import wait_for

USERS = {"cloud": "cloud-pw", GATEWAY_ID: "gw-pw"}


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return make_ca(tmp_path / "ca")


def _broker(tmp_path: Path, ca: Ca, server: CertFiles, require_client_cert: bool = False) -> Broker:
    return Broker(tmp_path / "broker", USERS,
                  tls=BrokerTls(ca.pem, server.cert, server.key, require_client_cert)).start()


@pytest.fixture
def tls_broker(tmp_path: Path, ca: Ca) -> Iterator[Broker]:
    b = _broker(tmp_path, ca, ca.issue(tmp_path / "server", "mosquitto", ip="127.0.0.1"))
    yield b
    b.stop()


@pytest.fixture
def spool(tmp_path: Path, key: Ed25519PrivateKey) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.db", GW_ID, key)
    s.add_records(DEV_A, recs(DEV_A, range(1, 41)))
    while s.seal_batch(10):
        pass
    yield s
    s.close()


def _uplink(broker: Broker, spool: Spool, **tls: str) -> Uplink:
    cfg = MqttConfig(host=broker.host, port=broker.tls_port, username=GATEWAY_ID, password="gw-pw",
                     keepalive=5, reconnect_min_s=0.2, reconnect_max_s=1.0, **tls)  # type: ignore[arg-type]
    return Uplink(cfg, GATEWAY_ID, spool)


def test_gateway_publishes_over_tls(tls_broker: Broker, spool: Spool, key: Ed25519PrivateKey,
                                    ca: Ca) -> None:
    expected = {(DEV_A, r) for r in recs(DEV_A, range(1, 41))}
    # the cloud on the loopback plain listener
    acker = CloudAcker(tls_broker.host, tls_broker.port, key.public_key()).start()
    up = _uplink(tls_broker, spool, tls_ca=str(ca.pem))
    up.start()
    try:
        wait_for(lambda: up.pump() >= 0 and not spool.pending_batches(), what="all confirmed over TLS")
        assert acker.records == expected and not acker.twice()
        assert up.stats.connects == 1 and up.stats.connect_failures == 0
    finally:
        up.stop()
        acker.stop()


def _refused(up: Uplink, spool: Spool, acker: CloudAcker) -> None:
    up.start()
    try:
        wait_for(lambda: up.stats.connect_failures >= 2, what="TLS refusals")
        assert up.stats.connects == 0 and not up.connected
        assert len(spool.pending_batches()) == 4 and acker.stats.deliveries == 0
    finally:
        up.stop()


def test_wrong_ca_is_refused(tls_broker: Broker, spool: Spool, key: Ed25519PrivateKey,
                             tmp_path: Path) -> None:
    other = make_ca(tmp_path / "other-ca", "someone else's CA")
    acker = CloudAcker(tls_broker.host, tls_broker.port, key.public_key()).start()
    try:
        _refused(_uplink(tls_broker, spool, tls_ca=str(other.pem)), spool, acker)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(other.pem))
        c.username_pw_set(GATEWAY_ID, "gw-pw")
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            c.connect(tls_broker.host, tls_broker.tls_port)
    finally:
        acker.stop()


def test_certificate_for_another_host_is_refused(tmp_path: Path, ca: Ca, spool: Spool,
                                                 key: Ed25519PrivateKey) -> None:
    b = _broker(tmp_path, ca, ca.issue(tmp_path / "server", "elsewhere", ip="10.9.9.9"))
    acker = CloudAcker(b.host, b.port, key.public_key()).start()
    try:
        _refused(_uplink(b, spool, tls_ca=str(ca.pem)), spool, acker)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(ca.pem))
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            c.connect(b.host, b.tls_port)
    finally:
        acker.stop()
        b.stop()


def test_client_certificate_when_the_broker_requires_one(tmp_path: Path, ca: Ca, spool: Spool,
                                                         key: Ed25519PrivateKey) -> None:
    b = _broker(tmp_path, ca, ca.issue(tmp_path / "server", "mosquitto", ip="127.0.0.1"),
                require_client_cert=True)
    acker = CloudAcker(b.host, b.port, key.public_key()).start()
    try:
        _refused(_uplink(b, spool, tls_ca=str(ca.pem)), spool, acker)  # no client certificate
        mine = ca.issue(tmp_path / "gw", GATEWAY_ID, client=True)
        up = _uplink(b, spool, tls_ca=str(ca.pem), tls_cert=str(mine.cert), tls_key=str(mine.key))
        up.start()
        try:
            wait_for(lambda: up.pump() >= 0 and not spool.pending_batches(), what="all confirmed")
            assert len(acker.records) == 40 and up.stats.connects == 1
        finally:
            up.stop()
    finally:
        acker.stop()
        b.stop()


def test_config_tls_paths(tmp_path: Path) -> None:
    raw = {"gateway_id": GATEWAY_ID, "private_key": "gw.key", "spool": "s.db",
           "mqtt": {"tls_ca": "tls/ca.pem", "tls_cert": "tls/gw.pem", "tls_key": "/etc/mcode/gw.key"}}
    m = gconfig.parse(raw, tmp_path).mqtt
    assert (m.tls_ca, m.tls_cert, m.tls_key) == (str(tmp_path / "tls/ca.pem"), str(tmp_path / "tls/gw.pem"),
                                                 "/etc/mcode/gw.key")
    for bad in ({"tls_cert": "a.pem", "tls_key": "a.key"}, {"tls_ca": "ca.pem", "tls_cert": "a.pem"}):
        with pytest.raises(gconfig.ConfigError, match="tls_"):
            gconfig.parse({**raw, "mqtt": bad}, tmp_path)
    assert gconfig.parse({**raw, "mqtt": {}}, tmp_path).mqtt.tls_ca == ""


def test_unreadable_tls_file_is_a_config_error(tmp_path: Path, spool: Spool) -> None:
    cfg = MqttConfig(tls_ca=str(tmp_path / "missing.pem"))
    with pytest.raises(gconfig.ConfigError, match="TLS files unusable"):
        Uplink(cfg, GATEWAY_ID, spool)

"""Config down, reports up, on the real broker: the cloud's publisher (cloud/gateway_config.py, and
`mcode cloud push-config`) signs a gateway's config from its database and publishes it retained;
the running gateway receives it after connecting, applies it to the collector live, refuses a
forged, a misaddressed and an older one, reports over its own topic, and restarts with the
latest applied config over gateway.toml's devices."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cloud.mqtt import config_publisher, report_listener
from cloud.services import gateway_config as gc
from cloud.services import signing_key
from cloud.settings import Settings
from cloud.store import vault
from cloud.store.engine import SessionFactory
from cloud.store.migrate import migrated_engine
from cloud.store.models import Device, GatewayConfigRow
from gateway import config as gconfig
from gateway.service import Gateway
from mcode.cli import app
from protocol import gwconfig
from sim.broker import Broker
from tests.cloud.conftest import MASTER_KEY, World, provision_world
from tests.conftest import GATEWAY_ID
from tests.wait import wait_for

pytestmark = pytest.mark.timeout(180)

BOGUS = "ffffffffffffffff"  # gateway.toml's device before the cloud's config arrives


@pytest.fixture
def sf(tmp_path: Path) -> Iterator[SessionFactory]:
    e = migrated_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    yield vault.session_factory(e, Settings(master_key=MASTER_KEY))
    e.dispose()


def write_gateway(tmp_path: Path, broker: Broker, world: World, cloud_pub: str) -> gconfig.GatewayConfig:
    (tmp_path / "gw.key").write_bytes(world.gw_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    p = tmp_path / "gateway.toml"
    p.write_text(f"""
gateway_id = "{GATEWAY_ID}"
private_key = "gw.key"
spool = "spool.sqlite"
cloud_public_key = "{cloud_pub}"

[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "{GATEWAY_ID}"
password = "gw-pw"
keepalive = 5

[[devices]]
id = "{BOGUS}"
key = "{'00' * 32}"
""")
    return gconfig.load(p)


class Running:
    """The gateway service on its own event loop thread (no BLE: the uplink and config only)."""

    def __init__(self, cfg: gconfig.GatewayConfig) -> None:
        self.gw = Gateway(cfg, collect=False)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._t = threading.Thread(target=asyncio.run, args=(self._main(),))
        self._t.start()
        assert self._started.wait(30)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started.set()
        await self.gw.run()

    def allowed(self) -> set[str]:
        return {d.hex() for d in self.gw.collector.allow}

    def stop(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.gw.stop)
        self._t.join(30)
        assert not self._t.is_alive()


def test_cloud_config_reaches_the_gateway_over_the_broker(tmp_path: Path, broker: Broker,
                                                          sf: SessionFactory) -> None:
    world = provision_world(sf)
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'cloud.db'}", broker_host=broker.host,
                        broker_port=broker.port, broker_user="cloud", broker_password="cloud-pw",
                        signing_key=str(tmp_path / "cloud-data" / "cloud.key"))
    cloud_key = signing_key.signing_key(settings.signing_key)
    dev0 = world.devices[0]["device_id"]
    devices = {d["device_id"] for d in world.devices}
    reports = report_listener.ReportListener(sf, settings).start()
    assert reports.subscribed.wait(20)

    def row() -> Any:
        with sf() as s:
            return s.get(GatewayConfigRow, GATEWAY_ID)

    # The cloud publishes v1 (retained) before the gateway is even up.
    gc.seal_device_config(sf, dev0, tx_power=-4)
    v1 = config_publisher.publish_config(sf, settings, GATEWAY_ID)
    assert v1["version"] == 1 and v1["writes"] == {dev0: 1}
    v1_payload = row().payload

    cfg = write_gateway(tmp_path, broker, world, signing_key.public_hex(cloud_key))
    gw = Running(cfg)
    try:
        assert gw.allowed() == {BOGUS}
        wait_for(lambda: gw.gw.remote.version == 1 and gw.allowed() == devices, what="v1 applied live")
        assert gw.gw.remote.pending(bytes.fromhex(dev0)) is not None
        # The gateway's report reached the cloud through its own topic (ACL) and was stored.
        wait_for(lambda: row().applied_version == 1, what="report of v1 at the cloud")
        assert gc.config_results(sf, GATEWAY_ID) == [
            {"device_id": dev0, "version": 1, "status": "pending", "reason": "", "device_version": None}]

        # Forged: right shape, wrong key. Misaddressed: the cloud's key, another gateway.
        forged = gwconfig.sign(gwconfig.GwConfig(bytes.fromhex(GATEWAY_ID), 99, 1, ()),
                               Ed25519PrivateKey.generate())
        config_publisher.publish(settings, gwconfig.config_topic(GATEWAY_ID), forged)
        wait_for(lambda: row().refused == "bad_signature", what="forged config refused and reported")
        other = gwconfig.sign(gwconfig.GwConfig(bytes.fromhex("b1b2b3b4b5b6b7b8"), 99, 1, ()), cloud_key)
        config_publisher.publish(settings, gwconfig.config_topic(GATEWAY_ID), other)
        wait_for(lambda: row().refused == "wrong_gateway", what="misaddressed config refused and reported")
        assert gw.gw.remote.version == 1 and gw.allowed() == devices

        # v2 through the operator's command: a device dropped, firmware targets set.
        with sf.begin() as s:
            d1 = s.get(Device, world.devices[1]["device_id"])
            assert d1 is not None
            d1.campaign_id = provision_world(sf, base="5000", name="Shop B", n_devices=0,
                                             gateway_id="c1c2c3c4c5c6c7c8").campaign["campaign_id"]
        env = {"MCODE_CLOUD_DB_URL": settings.db_url, "MCODE_CLOUD_BROKER_HOST": broker.host,
               "MCODE_CLOUD_BROKER_PORT": str(broker.port), "MCODE_CLOUD_BROKER_PASSWORD": "cloud-pw",
               "MCODE_CLOUD_SIGNING_KEY": settings.signing_key, "MCODE_CLOUD_MASTER_KEY": MASTER_KEY}
        r = CliRunner().invoke(app, ["cloud", "push-config", GATEWAY_ID,
                                     "--firmware", "kiosk-esp32-ssd1306=7"], env=env)
        assert r.exit_code == 0, r.output
        assert '"version": 2' in r.output
        wait_for(lambda: gw.gw.remote.version == 2 and gw.allowed() == {dev0}, what="v2 applied live")
        assert gw.gw.status()["remote_config"]["firmware"] == {"kiosk-esp32-ssd1306": 7}
        wait_for(lambda: row().applied_version == 2 and row().refused == "", what="report of v2")

        # An older genuine config, replayed: refused, v2 stays.
        config_publisher.publish(settings, gwconfig.config_topic(GATEWAY_ID), v1_payload)
        wait_for(lambda: row().refused == "stale_version", what="older config refused and reported")
        assert gw.gw.remote.version == 2 and gw.allowed() == {dev0}
        bad = CliRunner().invoke(app, ["cloud", "push-config", "nothex"], env=env)
        assert bad.exit_code == 2 and "bad_gateway_id" in bad.output
    finally:
        gw.stop()
        reports.stop()

    # A restart uses the latest applied config, not gateway.toml's devices (and the broker's
    # retained message is the replayed v1 now: refused again, v2 stays).
    again = Gateway(cfg, collect=False)
    try:
        assert again.remote.version == 2
        assert {d.hex() for d in again.collector.allow} == {dev0}
        assert again.remote.pending(bytes.fromhex(dev0)) is not None
    finally:
        again.spool.close()
    gw2 = Running(cfg)
    try:
        wait_for(lambda: gw2.gw.remote.last_refusal is not None, what="retained v1 refused after restart")
        assert gw2.gw.remote.last_refusal is not None and gw2.gw.remote.last_refusal[1] == "stale_version"
        assert gw2.gw.remote.version == 2 and gw2.allowed() == {dev0}
    finally:
        gw2.stop()

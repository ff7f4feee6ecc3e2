"""Device configuration writes delivered by the gateway to the real firmware over the real radio.

Devices are firmware/main.py in MicroPython (sim.devices.VirtualDevice) on a bumble radio hub; the
gateway is the real Collector and Session through bleak, with a RemoteConfig holding a config the
cloud signed. The cloud sealed each write with the device's config key; one is sealed with another
device's key, as a cloud bug or a tampering would, and the device refuses it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import config as gconfig
from gateway.collector import Collector
from gateway.remote_config import RemoteConfig
from gateway.session import PullResult
from gateway.spool import Spool
from protocol import command, devconfig, gwconfig, keys, rotation
from protocol.gwconfig import DeviceEntry, DeviceResult, GwConfig
from protocol.hmac256 import HmacKey
from sim.radio import RadioHub
from tests.ble import run
from tests.vdev import WAIT, Dev, wait_advertising

pytestmark = pytest.mark.timeout(180)

GW = bytes.fromhex("a1a2a3a4a5a6a7a8")
PERIOD = 86400


def sealed(device_key: bytes, device_id: bytes, version: int, label: str) -> bytes:
    s = devconfig.Settings(version, "7311", 2, 5, 3, PERIOD, label, -4)
    return devconfig.seal(HmacKey(keys.config_key(device_key)), device_id, s)


def codes(d: Dev) -> set[str]:
    """The campaign's code for this device now or in the next window (a boundary may fall between)."""
    rotor = rotation.Rotor(keys.rotation_key(d.key), 2, 5, 3)
    w = rotation.window(int(time.time()), PERIOD)
    return {str(rotation.format_code("7311", rotor.value(x), 3)) for x in (w, w + 1)}


@pytest.fixture
def hub() -> Iterator[RadioHub]:
    with RadioHub() as h:
        yield h


class Rig:
    def __init__(self, hub: RadioHub, tmp: Path) -> None:
        self.spec = "bumble:" + hub.hci_spec
        self.good = Dev(tmp / "good", hub.dev_addr)
        self.bad = Dev(tmp / "bad", hub.dev_addr)
        self.cloud = Ed25519PrivateKey.generate()
        gconfig.generate_key(tmp / "gateway.key")
        self.cfg = gconfig.parse({
            "gateway_id": GW.hex(), "private_key": "gateway.key", "spool": "spool.sqlite",
            "cloud_public_key": self.cloud.public_key().public_bytes_raw().hex(),
            "ble": {"backend": self.spec, "scan_s": 1.0, "connect_timeout_s": 5.0, "op_timeout_s": 5.0,
                    "session_timeout_s": 30.0, "concurrency": 2, "backoff_base_s": 0.2, "backoff_max_s": 0.5},
        }, tmp)
        self.spool = Spool(self.cfg.spool_path, GW, self.cfg.load_private_key())
        self.remote = self.new_remote()
        self.collector = Collector(self.cfg, self.spool, config_writes=self.remote)
        self.good_blob = sealed(self.good.key, self.good.device_id, 1, "Rye bread")
        # Sealed with the good device's key for the bad device: not the cloud's seal for it.
        self.bad_blob = sealed(self.good.key, self.bad.device_id, 1, "Forged")

    def new_remote(self) -> RemoteConfig:
        return RemoteConfig(self.cfg.remote_config_file, GW, self.cfg.cloud_key())

    def config(self, version: int) -> bytes:
        return gwconfig.sign(GwConfig(GW, version, int(time.time() * 1000), (
            DeviceEntry(self.good.device_id, keys.gateway_key(self.good.key, GW), self.good_blob),
            DeviceEntry(self.bad.device_id, keys.gateway_key(self.bad.key, GW), self.bad_blob))), self.cloud)

    async def sweep_until(self, want: set[bytes]) -> dict[bytes, PullResult]:
        """Sweep until every device in `want` was pulled in one sweep (bounded)."""
        async with asyncio.timeout(60):
            while True:
                results = await self.collector.sweep()
                got = {r.device_id: r for r in results if isinstance(r, PullResult)}
                if want <= set(got):
                    return got

    def stop(self) -> None:
        for d in (self.good, self.bad):
            d.vd.stop()
        self.spool.close()


@pytest.fixture
def rig(hub: RadioHub, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(hub, tmp_path)
    r.good.start()
    r.bad.start()
    yield r
    r.stop()


def test_gateway_delivers_config_writes_and_reports_each_outcome(rig: Rig) -> None:
    good, bad = rig.good, rig.bad
    both = {good.device_id, bad.device_id}

    async def main() -> None:
        await wait_advertising(rig.spec, [good.address, bad.address])
        old_code = good.vd.shown_code()
        applied = rig.remote.offer(rig.config(1))
        assert applied is not None
        rig.collector.set_devices(rig.remote.devices() or ())
        assert {r.status for r in rig.remote.results()} == {gwconfig.PENDING}

        first = await rig.sweep_until(both)
        assert first[good.device_id].config_write == (1, command.OK, 1)
        assert first[bad.device_id].config_write == (1, command.BAD_CONFIG_TAG, 0)
        assert rig.remote.results() == sorted([
            DeviceResult(good.device_id, 1, gwconfig.OK, "", 1),
            DeviceResult(bad.device_id, 1, gwconfig.REFUSED, "bad_config_tag", 0)], key=lambda r: r.device_id)
        # On the device: the blob kept verbatim, the new campaign on screen. The refused one
        # left its device as it was.
        assert (good.flash / "devconfig.bin").read_bytes() == rig.good_blob
        async with asyncio.timeout(WAIT):
            while good.vd.shown_code() not in codes(good):
                await asyncio.sleep(0.05)
        assert good.vd.shown_code() != old_code
        assert not (bad.flash / "devconfig.bin").exists()

        # The signed report the gateway sends up carries both outcomes.
        key = rig.cfg.load_private_key()
        body, sig, rep = gwconfig.open_report(rig.remote.report(key))
        assert gwconfig.verify(body, sig, key.public_key(), gwconfig.REPORT_CONTEXT)
        assert {(r.device_id, r.status, r.reason) for r in rep.results} == {
            (good.device_id, gwconfig.OK, ""), (bad.device_id, gwconfig.REFUSED, "bad_config_tag")}

        # Settled writes are not sent again.
        second = await rig.sweep_until(both)
        assert all(r.config_write is None for r in second.values())

        # The gateway lost its state (a new disk), gets the config again and delivers again:
        # the device already holds that version and says so, which counts as delivered.
        rig.cfg.remote_config_file.unlink()
        rig.remote = rig.new_remote()
        rig.collector.config_writes = rig.remote
        assert rig.remote.offer(rig.config(2)) is not None
        third = await rig.sweep_until({good.device_id})
        assert third[good.device_id].config_write == (1, command.STALE_VERSION, 1)
        now = {r.device_id: r for r in rig.remote.results()}
        assert now[good.device_id] == DeviceResult(good.device_id, 1, gwconfig.OK, "already_applied", 1)

    run(main())

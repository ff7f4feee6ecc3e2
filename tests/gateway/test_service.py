"""The whole gateway loop: fake displays -> collector -> spool -> batches -> real Mosquitto -> acking cloud.

The displays are the in-test fakes (tests/gateway/fake_device.py); the run over the virtual bumble
radio with the real firmware is the lead's integration test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from pathlib import Path

from typer.testing import CliRunner

from gateway import config as gconfig
from gateway.cli import app
from gateway.service import Gateway
from protocol import keys
from sim.broker import Broker
from sim.cloud_acker import CloudAcker
from tests.conftest import GATEWAY_ID
from tests.gateway.fake_device import DEVICE_KEY, FakeBle, FakeDevice
from tests.gateway.helpers import DEV_A, DEV_B, GW_ID
from tests.wait import wait_for


def _write_config(tmp_path: Path, broker: Broker) -> Path:
    key = gconfig.generate_key(tmp_path / "gw.key")
    del key
    gk = keys.gateway_key(DEVICE_KEY, GW_ID).hex()
    p = tmp_path / "gateway.toml"
    p.write_text(f"""
gateway_id = "{GATEWAY_ID}"
private_key = "gw.key"
spool = "spool.sqlite"

[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "{GATEWAY_ID}"
password = "gw-pw"

[ble]
backend = "fake"
scan_s = 0.05
sweep_interval_s = 0.2

[batch]
max_records = 16
max_age_s = 0.3

[[devices]]
id = "{DEV_A.hex()}"
key = "{gk}"

[[devices]]
id = "{DEV_B.hex()}"
key = "{gk}"
""")
    return p


def test_gateway_end_to_end_with_fake_displays(tmp_path: Path, broker: Broker) -> None:
    cfg_path = _write_config(tmp_path, broker)
    cfg = gconfig.load(cfg_path)
    a = FakeDevice(DEV_A, GW_ID, n_records=40, mtu=120)
    b = FakeDevice(DEV_B, GW_ID, n_records=7)
    ble = FakeBle({"AA:00": a, "BB:00": b})
    acker = CloudAcker(broker.host, broker.port, cfg.load_private_key().public_key()).start()
    gw = Gateway(cfg, ble=ble)
    t, loop = _run_in_thread(gw)
    try:
        want = {(DEV_A, r) for r in a.log} | {(DEV_B, r) for r in b.log}
        wait_for(lambda: acker.records == want, what="every record at the cloud")
        wait_for(lambda: a.acked == 40 and b.acked == 7, what="devices acked")
        # taps keep coming while it runs
        more = [a.tap() for _ in range(5)]
        want |= {(DEV_A, r) for r in more}
        wait_for(lambda: acker.records == want and a.acked == 45, what="new taps delivered")
        wait_for(lambda: gw.spool.counts().records == 0, what="spool drained")
        st = gw.status()
        assert st["devices"][DEV_A.hex()]["acked_seq"] == 45
        assert st["uplink"]["quarantined"] == 0
    finally:
        _stop(gw, t, loop)  # asserts that the gateway's run() returned
        acker.stop()

    # status and spool commands read the spool the stopped gateway left behind
    r = CliRunner().invoke(app, ["status", "--config", str(cfg_path), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["cursors"] == {DEV_A.hex(): 45, DEV_B.hex(): 7} and s["pending"] == []
    r = CliRunner().invoke(app, ["status", "--config", str(cfg_path)])
    assert r.exit_code == 0 and "mc-" + DEV_A.hex()[-4:] in r.output  # devices by their advertised name


def test_cli_keygen_and_spool_export(tmp_path: Path, broker: Broker) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["keygen", str(tmp_path / "k.pem")])
    assert r.exit_code == 0 and len(r.output.strip()) == 64
    assert runner.invoke(app, ["keygen", str(tmp_path / "k.pem")]).exit_code == 1  # never overwrites
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    cfg_path = _write_config(tmp_path, broker)
    cfg = gconfig.load(cfg_path)
    gw = Gateway(cfg, ble=FakeBle({}))
    gw.spool.add_records(DEV_A, FakeDevice(DEV_A, GW_ID, n_records=3).log)
    gw.spool.close()
    r = runner.invoke(app, ["spool", "--config", str(cfg_path), "--export"])
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert [x["seq"] for x in lines] == [1, 2, 3]
    r = runner.invoke(app, ["pubkey", "--config", str(cfg_path)])
    assert r.output.strip() == gconfig.public_hex(cfg.load_private_key())


def test_run_stops_gracefully_on_sigterm(tmp_path: Path, broker: Broker) -> None:
    import signal
    import subprocess
    import sys

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from protocol import batch as pbatch
    from protocol import health

    cfg_path = _write_config(tmp_path, broker)
    got: list[bytes] = []
    obs = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    obs.username_pw_set("cloud", "cloud-pw")
    obs.on_message = lambda cl, ud, m: got.append(bytes(m.payload))
    obs.on_connect = lambda cl, *a: cl.subscribe(pbatch.status_topic(GATEWAY_ID), qos=1)
    obs.connect(broker.host, broker.port)
    obs.loop_start()
    proc = subprocess.Popen([sys.executable, "-c", "from gateway.cli import app; app()", "run",
                             "--no-ble", "--config", str(cfg_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: any(health.decode(p)["state"] == health.ONLINE for p in got),
                 what="gateway online")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode()[-2000:]
        assert b"gateway stopped" in out
        wait_for(lambda: got[-1:] == [b"offline"], what="offline status")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        obs.loop_stop()


def _run_in_thread(gw: Gateway) -> tuple[threading.Thread, list[asyncio.AbstractEventLoop]]:
    loop: list[asyncio.AbstractEventLoop] = []

    def runner() -> None:
        async def main() -> None:
            loop.append(asyncio.get_running_loop())
            await gw.run()
        asyncio.run(main())

    t = threading.Thread(target=runner)
    t.start()
    wait_for(lambda: bool(loop), what="gateway loop")
    return t, loop


def _stop(gw: Gateway, t: threading.Thread, loop: list[asyncio.AbstractEventLoop]) -> None:
    loop[0].call_soon_threadsafe(gw.stop)
    t.join(30)
    assert not t.is_alive()


def test_full_spool_leaves_records_on_the_device_until_the_cloud_confirms(tmp_path: Path,
                                                                       broker: Broker) -> None:
    """A cloud that stays silent fills the spool to its limit: the gateway then takes (and acks)
    no more, the device keeps the rest; once the cloud acks, everything arrives, once."""
    cfg_path = _write_config(tmp_path, broker)
    cfg_path.write_text(cfg_path.read_text().replace('spool = "spool.sqlite"\n', "")
                        + '\n[spool]\npath = "spool.sqlite"\nmax_records = 10\n')
    cfg = gconfig.load(cfg_path)
    assert cfg.spool.max_records == 10
    a = FakeDevice(DEV_A, GW_ID, n_records=25)
    silent = [True]
    acker = CloudAcker(broker.host, broker.port, cfg.load_private_key().public_key(),
                       decide=lambda b: None if silent[0] else "stored").start()
    gw = Gateway(cfg, ble=FakeBle({"AA:00": a}))
    t, loop = _run_in_thread(gw)
    try:
        wait_for(lambda: gw.spool.fill().level == "full", what="spool full")
        wait_for(lambda: "spool full: not read" in (gw.collector.devices[DEV_A.hex()].last_error or ""),
                 what="a pull that did not read")
        assert a.acked == 10 and gw.spool.counts().records == 10  # the rest is still on the device
        assert gw.spool.cursor(DEV_A) == 10 and acker.records == set()
        silent[0] = False  # the cloud catches up
        want = {(DEV_A, r) for r in a.log}
        wait_for(lambda: acker.records == want and a.acked == 25, timeout=60, what="all 25 at the cloud")
        wait_for(lambda: gw.spool.counts().records == 0, what="spool drained")
        assert gw.spool.fill().level == "ok"
        assert sum(c.n_records for c in gw.spool.confirmed_batches()) == 25
    finally:
        _stop(gw, t, loop)
        acker.stop()


def test_restart_with_a_changed_config_keeps_the_spool(tmp_path: Path, broker: Broker) -> None:
    """Neither a restart nor a changed config (limits, allowlist) nor reconnecting wipes anything."""
    cfg_path = _write_config(tmp_path, broker)
    cfg = gconfig.load(cfg_path)
    gw = Gateway(cfg, ble=FakeBle({}))
    gw.spool.add_records(DEV_A, FakeDevice(DEV_A, GW_ID, n_records=6).log)
    sealed = gw.spool.seal_batch(4)
    assert sealed is not None
    gw.spool.close()
    # Another allowlist (device A gone) and a limit below what is spooled.
    cfg2 = dataclasses.replace(cfg, devices=cfg.devices[1:],
                               spool=gconfig.SpoolConfig(max_records=3))
    gw2 = Gateway(cfg2, ble=FakeBle({}))
    t, loop = _run_in_thread(gw2)
    try:
        wait_for(lambda: gw2.uplink.connected, what="connected")  # a (re)connect to the broker
        assert [p.bseq for p in gw2.spool.pending_batches()] == [sealed[0]]
        assert gw2.spool.counts().records == 6 and gw2.spool.cursor(DEV_A) == 6
        assert gw2.spool.fill().level == "full"  # over the new limit: kept, not trimmed
    finally:
        _stop(gw2, t, loop)

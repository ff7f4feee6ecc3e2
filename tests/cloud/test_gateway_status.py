"""The gateways' retained status, ingested (issue 14 part 2): the latest state per gateway and what
it saw of each device (battery, firmware, last pulled) is stored, within the gateway's own
merchant; bad payloads, unknown and revoked gateways are refused with a reason and never crash the
listener; the dashboard's device health shows battery, firmware and the gateway's state; and end to
end a running gateway's status reaches the cloud through a real Mosquitto."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.mqtt.status_listener import StatusListener
from cloud.services import dashboard, gateway_trust, signing_key
from cloud.services.gateway_status import StatusRefused, store_status
from cloud.settings import Settings
from cloud.store import vault
from cloud.store.engine import SessionFactory
from cloud.store.migrate import migrated_engine
from cloud.store.models import DeviceHealth, GatewayStatus
from gateway.spool import Spool
from protocol import health
from protocol.batch import status_topic
from sim.broker import Broker
from tests.cloud.conftest import MASTER_KEY, Clock, World, provision_world
from tests.cloud.mqtt_helpers import GatewayClient
from tests.cloud.test_merchant_page_browser import base_url, log_in  # noqa: F401 (fixture)
from tests.conftest import GATEWAY_ID
from tests.gateway.test_remote_config_mqtt import Running, write_gateway
from tests.pw import PHONE, chromium, context
from tests.wait import wait_for

SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
TOPIC = status_topic(GATEWAY_ID)
OTHER_GW = "c1c2c3c4c5c6c7c8"


def figures(ts: int = 1_700_000_000) -> dict[str, Any]:
    return {"ts": ts, "up_s": 12, "spool_records": 250, "spool_unbatched": 50, "spool_batches": 2,
            "spool_fill": 0.85, "spool_alarm": "warn", "oldest_unbatched_s": 1, "inflight": 2,
            "confirmed_bseq": 7, "confirmed_batches": 7, "confirmed_records": 700, "records_per_s": 35.5,
            "connects": 2, "disconnects": 1}


def rows(sf: SessionFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    with sf() as s:
        gws = {g.gateway_id: (g.state, g.sent_at_ms, g.refused) for g in s.query(GatewayStatus)}
        devs = {d.device_id: (d.gateway_id, d.seen_at_ms, d.battery_low, d.firmware, d.rssi)
                for d in s.query(DeviceHealth)}
    return gws, devs


def test_status_stored_per_gateway_and_device(sf: SessionFactory, world: World) -> None:
    a, b = (d["device_id"] for d in world.devices)
    foreign = provision_world(sf, base="5000", name="Shop B", gateway_id=OTHER_GW).devices[0]["device_id"]
    devs = [[a, 1_700_000_100, 1, 3, -61], [b, None, None, None, None], [foreign, 1_700_000_100, 0, 9, -40],
            ["0000000000000000", 5, 0, 1, 0]]
    got = store_status(sf, TOPIC, health.encode_online(figures(), devs), t=1)
    assert (got.state, got.devices, got.ignored) == ("online", 2, 2)  # B's device and an unknown one ignored
    gws, stored = rows(sf)
    assert gws == {GATEWAY_ID: ("online", 1_700_000_000_000, "")}
    assert stored == {a: (GATEWAY_ID, 1_700_000_100_000, True, 3, -61),
                      b: (GATEWAY_ID, None, None, None, None)}
    # the battery is replaced, the last will says offline and keeps what the devices showed
    devs[0] = [a, 1_700_000_200, 0, 4, -55]
    store_status(sf, TOPIC, health.encode_online(figures(1_700_000_300), devs[:1]), t=2)
    store_status(sf, TOPIC, health.OFFLINE_PAYLOAD, t=3)
    gws, stored = rows(sf)
    assert gws[GATEWAY_ID] == ("offline", 1_700_000_300_000, "")
    assert stored[a] == (GATEWAY_ID, 1_700_000_200_000, False, 4, -55)
    # B's gateway cannot speak for A's devices either
    assert store_status(sf, status_topic(OTHER_GW), health.encode_online(figures(), devs[:1])).ignored == 1


def test_bad_status_is_refused_with_a_reason(sf: SessionFactory, world: World) -> None:
    store_status(sf, TOPIC, health.encode_online(figures()), t=1)
    cases = [(TOPIC, b"{not json", "malformed"), (TOPIC, b'{"v": 2, "state": "online"}', "malformed"),
             ("mcode/v0/gw/NOTHEX/status", health.OFFLINE_PAYLOAD, "bad_topic"),
             (status_topic("d1d2d3d4d5d6d7d8"), health.OFFLINE_PAYLOAD, "unknown_gateway")]
    for topic, payload, reason in cases:
        with pytest.raises(StatusRefused) as e:
            store_status(sf, topic, payload, t=2)
        assert e.value.reason == reason
    gws, _ = rows(sf)
    assert gws[GATEWAY_ID][0] == "online" and gws[GATEWAY_ID][2].startswith("malformed: status version 2")
    gateway_trust.revoke(sf, GATEWAY_ID)
    with pytest.raises(StatusRefused) as e:
        store_status(sf, TOPIC, health.OFFLINE_PAYLOAD)
    assert e.value.reason == "gateway_revoked" and rows(sf)[0][GATEWAY_ID][0] == "online"


def test_device_health_shows_battery_firmware_and_the_gateway(
        base_url: str, sf: SessionFactory, world: World, clock: Clock) -> None:  # noqa: F811
    a, b = (d["device_id"] for d in world.devices)
    store_status(sf, TOPIC, health.encode_online(figures(int(clock())), [[a, int(clock()), 1, 3, -61]]),
                 t=int(clock() * 1000))
    h = {r["device_id"]: r for r in dashboard.health(sf, world.merchant["merchant_id"], int(clock() * 1000))}
    assert (h[a]["battery_low"], h[a]["firmware"], h[a]["gateway_state"], h[a]["spool_alarm"]) == (
        True, 3, "online", "warn")
    assert h[b]["battery_low"] is None and h[b]["gateway_state"] is None  # no status named it yet
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        for locale in ("zh-CN", "en"):
            with context(browser, PHONE, locale) as ctx:
                page, errors = log_in(ctx, base_url, world.merchant["api_key"])
                row_a = page.locator(f'tr[data-health="{a}"]')
                assert row_a.locator("td.battery").inner_text() == "电量低 low"  # every label in zh and en
                assert row_a.locator("td.firmware").inner_text() == "v3"
                gw = row_a.locator("td.gateway").inner_text()
                assert "在线 online" in gw and "缓存将满 spool filling" in gw and GATEWAY_ID in gw
                assert page.locator(f'tr[data-health="{b}"] td.battery').inner_text() == "未知 unknown"
                page.locator("#health").scroll_into_view_if_needed()
                page.screenshot(path=str(SHOTS / f"device-health-{locale}-phone.png"))
                assert errors == []


# -- end to end: a running gateway, a real Mosquitto, the listener ----------------------------

@pytest.fixture
def sqlite_sf(tmp_path: Path) -> Iterator[SessionFactory]:
    e = migrated_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    yield vault.session_factory(e, Settings(master_key=MASTER_KEY))
    e.dispose()


@pytest.mark.timeout(180)
def test_a_running_gateways_status_reaches_the_dashboard(tmp_path: Path, broker: Broker,
                                                         sqlite_sf: SessionFactory) -> None:
    sf = sqlite_sf
    world = provision_world(sf)
    a = world.devices[0]["device_id"]
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'cloud.db'}", broker_host=broker.host,
                        broker_port=broker.port, broker_user="cloud", broker_password="cloud-pw",
                        signing_key=str(tmp_path / "cloud-data" / "cloud.key"))
    cfg = write_gateway(tmp_path, broker, world,
                        signing_key.public_hex(signing_key.signing_key(settings.signing_key)))
    # what the gateway's collector saved of device A on its last pull
    spool = Spool(cfg.spool_path, cfg.gateway_id, cfg.load_private_key())
    spool.set_device_status(bytes.fromhex(a), last_seen=time.time(), battery_low=1, fw=5, rssi=-70)
    spool.close()
    listener = StatusListener(sf, settings).start()
    try:
        assert listener.subscribed.wait(20)
        gw = Running(cfg)
        try:
            wait_for(lambda: rows(sf)[1].get(a, (None,) * 5)[2:4] == (True, 5),
                     what="device A's health stored")
            assert rows(sf)[0][GATEWAY_ID][0] == "online"
            # garbage on the gateway's own topic: refused with a reason, the listener carries on
            bad = GatewayClient(broker, "b1b2b3b4b5b6b7b8", "gw2-pw")  # a gateway the cloud does not know
            bad.publish(b"\xff garbage", status_topic("b1b2b3b4b5b6b7b8"))
            wait_for(lambda: listener.refused >= 1, what="garbage refused")
            assert listener.last_refusal == "malformed"
            bad.c.disconnect()
        finally:
            gw.stop()  # a clean stop says offline (retained)
        wait_for(lambda: rows(sf)[0][GATEWAY_ID][0] == "offline", what="offline stored")
        h = dashboard.health(sf, world.merchant["merchant_id"], int(time.time() * 1000))
        assert [(r["battery_low"], r["firmware"], r["gateway_state"]) for r in h if r["device_id"] == a] == [
            (True, 5, "offline")]
        assert listener.stored >= 2
    finally:
        listener.stop()
    # a listener that starts later learns every gateway's state from the retained message
    with sf.begin() as s:
        s.query(GatewayStatus).delete()
    late = StatusListener(sf, settings).start()
    try:
        wait_for(lambda: rows(sf)[0].get(GATEWAY_ID, ("",))[0] == "offline",
                 what="retained status at a late start")
    finally:
        late.stop()

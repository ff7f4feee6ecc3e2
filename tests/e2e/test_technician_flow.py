"""The technician's whole job on real parts, then a shopper: a virtual serial board driven by the
real `mcode tools` (mpremote's transport, pyserial) and a fleet of real tiers (Mosquitto, the
bumble radio, the cloud, the gateway).

  register (a merchant issues a technician key and a location) -> flash -> provision -> verify
  (and reboot) -> the gateway learns the device and sets its clock -> it shows its code -> a phone
  taps it over the virtual radio -> the gateway collects the tap -> the cloud has the event."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from sim.fleet import Fleet, FleetPlan
from sim.phone import Phone
from sim.process import stop_process
from sim.serialboard.board import SerialBoard
from tests.tools.test_technician_tools import tools
from tests.wait import wait_for

BOARD = "label-esp32c3-ssd1680"


def _code_shown(board: SerialBoard) -> str | None:
    shown = board.peek("display.txt")
    first = shown.decode().split()[0] if shown and shown.strip() else ""
    return first if first.startswith("4919-") else None


def _add_device_to_gateway(fleet: Fleet) -> None:
    """What the operator does for a new device: its command key into gateway.toml, then a restart
    (the cloud can also push it as a signed remote config)."""
    from cloud.services import provision
    from cloud.settings import Settings
    from cloud.store import vault
    from cloud.store.engine import make_engine

    engine = make_engine(fleet.db_url)
    sf = vault.session_factory(engine, Settings(db_url=fleet.db_url, master_key=fleet.master_key))
    keys = provision.gateway_device_keys(sf, fleet.gateway_id)
    engine.dispose()
    conf = fleet.workdir / "gateway" / "gateway.toml"
    conf.write_text(conf.read_text() + "".join(
        f'\n[[devices]]\nid = "{d["device_id"]}"\nkey = "{d["gateway_key"]}"\n' for d in keys))
    stop_process(fleet.procs["gateway"])
    fleet._spawn("gateway", [*fleet.procs["gateway"].args[:3], "gateway", "run", "--config", str(conf)])  # type: ignore[index]


@pytest.mark.timeout(400)
def test_register_flash_provision_verify_show_tap_collect(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet", FleetPlan(devices=0)).start()
    board = SerialBoard(tmp_path / "board", BOARD, radio=fleet.hub.dev_addr if fleet.hub else None)
    try:
        board.start()
        # 1. register: the merchant makes a location and a technician key (HTTP, merchant key)
        mk = {"Authorization": f"Bearer {fleet.merchant['api_key']}"}
        loc = httpx.post(f"{fleet.api}/locations", headers=mk, json={"name": "Aisle 3 三号货架"}).json()
        tk = httpx.post(f"{fleet.api}/keys", headers=mk, json={"role": "technician", "label": "Li"}).json()
        key = tk["api_key"]
        # 2. flash and provision
        r = tools("flash", board.port, "--board", BOARD)
        assert r.returncode == 0, r.stdout + r.stderr
        r = tools("provision", board.port, "--board", BOARD, "--location", str(loc["location_id"]),
                  "--cloud", fleet.api, "--label", "shelf 3", "--state", str(tmp_path / "box.json"), key=key)
        assert r.returncode == 0, r.stdout + r.stderr
        devs = httpx.get(f"{fleet.api}/devices", headers=mk).json()["devices"]
        assert len(devs) == 1 and devs[0]["location_id"] == loc["location_id"]
        assert devs[0]["installed_at_ms"] is not None  # provision marked it installed there
        dev_id = devs[0]["device_id"]
        # 3. verify (every file read back, self-test) and reboot
        r = tools("verify", board.port)
        assert r.returncode == 0 and f"ok {dev_id} 4919" in r.stdout, r.stdout + r.stderr
        # 4. the gateway learns it, sets its clock, and the device shows its code
        _add_device_to_gateway(fleet)
        wait_for(lambda: _code_shown(board) is not None, 120, "the device showing its code")
        # 5. a phone taps it over the virtual radio
        phone = Phone(fleet.ble_spec)
        name = "mc-" + dev_id[-4:]

        async def tap() -> bytes:
            found: dict[str, str] = {}
            deadline = time.monotonic() + 60
            while name not in found and time.monotonic() < deadline:
                found = await phone.find_displays(2.0)
            return (await phone.tap(found[name])).nonce

        nonce = asyncio.run(tap())
        # 6. the gateway collects the tap; 7. the cloud has the event
        engine = create_engine(fleet.db_url)

        def in_cloud() -> bool:
            with engine.connect() as c:
                rows = c.execute(text("SELECT data FROM events WHERE device_id = :d"), {"d": dev_id}).all()
            return any(bytes(r[0]) == nonce for r in rows)

        try:
            wait_for(in_cloud, 120, "the tap in the cloud")
        finally:
            engine.dispose()
    finally:
        board.stop()
        fleet.stop()

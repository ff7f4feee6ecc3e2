"""For the technician tools: the cloud's real HTTP API on loopback (uvicorn in a thread, SQLite),
seeded as a merchant would (campaign, location, technician key), and a virtual serial board."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from sim.ports import free_port, wait_port
from sim.radio.hub import RadioHub
from sim.serialboard.board import SerialBoard

BOARD = "label-esp32c3-ssd1680"


@dataclass
class CloudFixture:
    url: str
    tech_key: str
    campaign_id: int
    location: str
    base: str
    db_url: str


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudFixture]:
    from cloud.http.app import create_app
    from cloud.services import auth, campaigns, locations, merchants
    from cloud.settings import Settings
    from cloud.store import vault
    from cloud.store.migrate import migrated_engine

    db_url = f"sqlite:///{tmp_path_factory.mktemp('cloud') / 'cloud.sqlite'}"
    settings = Settings(db_url=db_url, master_key="ab" * 32)
    engine = migrated_engine(db_url)
    sf = vault.session_factory(engine, settings)
    m = merchants.create_merchant(sf, "Shop 商店")
    camp = campaigns.create(sf, m["merchant_id"], base_code="4919", slots=8, digits=2, period_s=20,
                            pool_minor=4000, label_zh="扫码有礼", label_en="Tap and share")
    loc = locations.create_location(sf, m["merchant_id"], "Aisle 3 三号货架")
    key = str(auth.issue_key(sf, auth.TECHNICIAN, m["merchant_id"], "installer")["api_key"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine), port=port,
                                           log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    wait_port(port)
    yield CloudFixture(f"http://127.0.0.1:{port}", key, int(camp["campaign_id"]), str(loc["name"]), "4919",
                       db_url)
    server.should_exit = True
    t.join(10)
    engine.dispose()


@pytest.fixture(scope="session")
def hub() -> Iterator[RadioHub]:
    h = RadioHub()
    h.start()
    yield h
    h.stop()


@pytest.fixture
def board(tmp_path: Path, hub: RadioHub) -> Iterator[SerialBoard]:
    b = SerialBoard(tmp_path / "board", BOARD, radio=hub.dev_addr)
    b.start()
    time.sleep(0.3)  # its first boot
    yield b
    b.stop()

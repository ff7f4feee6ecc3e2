"""Cloud fixtures: a real database (each test runs on a SQLite file and on PostgreSQL), the API
on it with a settable clock, and a provisioned world (merchant, campaign, devices, gateway with
an Ed25519 key)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cloud.http.app import create_app
from cloud.services import campaigns, merchants, provision
from cloud.settings import Settings
from cloud.store import vault
from cloud.store.engine import SessionFactory
from cloud.store.migrate import migrated_engine
from tests.conftest import GATEWAY_ID
from tests.pg import TEMPLATE, PgCluster, start_cluster

ADMIN_KEY = "admin-test-key-at-least-32-characters"  # the cloud refuses a shorter one
MASTER_KEY = "6d636f64652d746573742d6d61737465722d6b65792d6f662d33322d62797465"  # 32 bytes, hex
VISITOR_SECRET = "visitor-secret-of-the-test-cloud"  # signs visitor tokens, the same in every process
SETTINGS = Settings(db_url="unused", admin_key=ADMIN_KEY, master_key=MASTER_KEY,
                    visitor_secret=VISITOR_SECRET)  # a running test cloud's
T0 = 1_700_000_000.0  # a fixed "now" for resolution tests


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class World:
    merchant: dict[str, Any]
    campaign: dict[str, Any]
    devices: list[dict[str, Any]]  # device configs, as a technician gets them
    gw_key: Ed25519PrivateKey
    gateway_id: str


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """One PostgreSQL server for the session (tests/pg.py); fails in CI if PostgreSQL is missing."""
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every cloud test runs on both databases: a new SQLite file, or a new PostgreSQL database
    copied from the migrated template (dropped after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cloud.db'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg")
    with cluster.database(TEMPLATE) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The database migrated to head, as the app's startup does it."""
    e = migrated_engine(db_url)
    yield e
    e.dispose()


@pytest.fixture
def sf(engine: Engine) -> SessionFactory:
    """Sessions as the app's: they carry the vault of MASTER_KEY (device keys are stored sealed)."""
    return vault.session_factory(engine, SETTINGS)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(engine: Engine, clock: Clock) -> Iterator[TestClient]:
    app = create_app(SETTINGS, engine=engine, clock_=clock)
    # https: cookies are Secure by default, and a client keeps them for https only
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def provision_world(sf: SessionFactory, base: str = "4919", name: str = "Shop A", n_devices: int = 2,
                    gateway_id: str = GATEWAY_ID, digits: int = 2, slots: int = 4) -> World:
    m = merchants.create_merchant(sf, name)
    c = campaigns.create(sf, m["merchant_id"], base_code=base, slots=slots, digits=digits, period_s=60,
                         pool_minor=1000, label_zh=f"{name} 欢迎", label_en=f"Welcome to {name}")
    devs = [provision.create_device(sf, c["campaign_id"], label=f"shelf {i}", location="aisle 1")
            for i in range(n_devices)]
    key = Ed25519PrivateKey.generate()
    provision.create_gateway(sf, gateway_id, public_hex(key), merchant_id=m["merchant_id"])
    return World(m, c, devs, key, gateway_id)


@pytest.fixture
def world(sf: SessionFactory) -> World:
    return provision_world(sf)

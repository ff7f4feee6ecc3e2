"""Cloud fixtures: a real SQLite file database, the API on it with a settable clock, and a
provisioned world (merchant, campaign, devices, gateway with an Ed25519 key)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cloud import provision
from cloud.app import create_app
from cloud.db import SessionFactory, make_engine, make_session_factory
from cloud.models import Base
from cloud.settings import Settings
from tests.conftest import GATEWAY_ID

ADMIN_KEY = "admin-test-key"
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


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file in tmp_path; MCODE_CLOUD_TEST_DB_URL points the same tests at another database
    (e.g. postgresql+psycopg://...), whose tables are dropped and made anew for each test."""
    url = os.environ.get("MCODE_CLOUD_TEST_DB_URL")
    if url:
        e = make_engine(url, create=False)
        Base.metadata.drop_all(e)
        Base.metadata.create_all(e)
    else:
        e = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    yield e
    e.dispose()


@pytest.fixture
def sf(engine: Engine) -> SessionFactory:
    return make_session_factory(engine)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(engine: Engine, clock: Clock) -> Iterator[TestClient]:
    app = create_app(Settings(db_url="unused", admin_key=ADMIN_KEY), engine=engine, clock_=clock)
    with TestClient(app) as c:
        yield c


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def provision_world(sf: SessionFactory, base: str = "4919", name: str = "Shop A", n_devices: int = 2,
                    gateway_id: str = GATEWAY_ID, digits: int = 2, slots: int = 4) -> World:
    m = provision.create_merchant(sf, name)
    c = provision.create_campaign(sf, m["merchant_id"], base, slots=slots, digits=digits, period_s=60,
                                  pool_minor=1000, label_zh=f"{name} 欢迎", label_en=f"Welcome to {name}")
    devs = [provision.create_device(sf, c["campaign_id"], label=f"shelf {i}", location="aisle 1")
            for i in range(n_devices)]
    key = Ed25519PrivateKey.generate()
    provision.create_gateway(sf, gateway_id, public_hex(key), merchant_id=m["merchant_id"])
    return World(m, c, devs, key, gateway_id)


@pytest.fixture
def world(sf: SessionFactory) -> World:
    return provision_world(sf)

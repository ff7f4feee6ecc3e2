"""Migration 0006 (landing) on SQLite and PostgreSQL: entries made before it get their kind from
what they hold, as the API reported it before (no device: share; a device without a window:
printed; else display); campaigns get currency CNY and no image or target; and it goes down again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, MetaData, Table, insert, inspect, text
from sqlalchemy.types import Boolean, Integer, LargeBinary, String

from cloud.store import migrate
from cloud.store.engine import make_engine
from tests.cloud.conftest import MASTER_KEY
from tests.pg import PgCluster


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        e = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield e
        e.dispose()
        return
    cluster: PgCluster = request.getfixturevalue("pg")
    with cluster.database("template0") as url:
        e = make_engine(url)
        yield e
        e.dispose()


def _row(conn: Connection, table: str, **given: Any) -> None:
    """Insert `given`, filling every other NOT NULL column without a default with a plain value."""
    t = Table(table, MetaData(), autoload_with=conn)
    values = dict(given)
    for col in t.columns:
        if col.name in values or col.nullable or col.server_default is not None or col.autoincrement is True:
            continue
        if isinstance(col.type, Boolean):
            values[col.name] = False
        elif isinstance(col.type, Integer):
            values[col.name] = 0
        elif isinstance(col.type, LargeBinary):
            values[col.name] = b"\0"
        elif isinstance(col.type, String):
            values[col.name] = "x"
        else:
            values[col.name] = "x"
    conn.execute(insert(t).values(**values))


def test_0006_backfills_entry_kinds_and_goes_down_again(engine: Engine) -> None:
    migrate.upgrade(engine, "0005", master_key=MASTER_KEY)
    assert "via" not in {c["name"] for c in inspect(engine).get_columns("entries")}
    with engine.begin() as conn:
        _row(conn, "merchants", id=1, name="Shop A", created_at_ms=0)
        _row(conn, "campaigns", id=1, merchant_id=1, base_code="4919", slots=4, digits=2, period_s=60,
             pool_minor=100, rule="red-balloon", label_zh="A", label_en="A", created_at_ms=0)
        _row(conn, "devices", id="00112233aabbccdd", campaign_id=1, slot=0, created_at_ms=0)
        _row(conn, "devices", id="00112233aabbccde", campaign_id=1, slot=1, printed=True, created_at_ms=0)
        _row(conn, "entries", id="a" * 32, campaign_id=1, code="4919-00", device_id="00112233aabbccdd",
             window=5, root_device_id="00112233aabbccdd", depth=0, visitor="v" * 22, created_at_ms=1)
        _row(conn, "entries", id="b" * 32, campaign_id=1, code="4919-01", device_id="00112233aabbccde",
             window=None, root_device_id="00112233aabbccde", depth=0, visitor="v" * 22, created_at_ms=2)
        _row(conn, "participants", id=1, campaign_id=1, entry_id="a" * 32, visitor="v" * 22,
             share_code="123456", created_at_ms=3)
        _row(conn, "entries", id="c" * 32, campaign_id=1, code="4919-123456", device_id=None, window=None,
             parent_participant_id=1, root_device_id="00112233aabbccdd", depth=1, visitor="w" * 22,
             created_at_ms=4)
    migrate.upgrade(engine, "0006", master_key=MASTER_KEY)
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT id, via FROM entries ORDER BY id")).all()
        campaign = conn.execute(text("SELECT currency, image_url, target_url FROM campaigns")).one()
    assert [(i[0], v) for i, v in kinds] == [("a", "display"), ("b", "printed"), ("c", "share")]
    assert tuple(campaign) == ("CNY", None, None)
    migrate.downgrade(engine, "0005", master_key=MASTER_KEY)
    assert "via" not in {c["name"] for c in inspect(engine).get_columns("entries")}
    assert "saved_codes" not in inspect(engine).get_table_names()
    migrate.upgrade(engine, master_key=MASTER_KEY)
    assert migrate.current(engine) == migrate.head()

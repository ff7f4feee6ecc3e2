"""Migrations (cloud/migrations/) on SQLite and PostgreSQL: at head they make exactly the schema of
cloud/models.py; they undo and redo; a database create_all made before migrations is adopted;
two processes starting at once migrate once.

When cloud/models.py changes, test_head_matches_models fails until a revision is added:
`mcode cloud db revision -m "..."` (docs/cloud.md, "Databases and migrations")."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, select, text

from cloud.store import migrate
from cloud.store.engine import make_engine
from cloud.store.models import Base, Merchant
from tests.pg import PgCluster


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg")
    with cluster.database("template0") as url:
        yield url


@pytest.fixture
def empty(empty_url: str) -> Iterator[Engine]:
    e = make_engine(empty_url)
    yield e
    e.dispose()


def diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_head_matches_models(empty: Engine) -> None:
    assert tables(empty) == set()
    migrate.upgrade(empty)
    assert migrate.current(empty) == migrate.head()
    assert tables(empty) == set(Base.metadata.tables)
    assert diff(empty) == [], "cloud/models.py differs from the migrations: add a revision"


def test_migrated_engine_migrates_and_a_second_start_changes_nothing(empty_url: str) -> None:
    e = migrate.migrated_engine(empty_url)
    try:
        with e.begin() as conn:
            conn.execute(insert(Merchant).values(name="a", created_at_ms=1))
        e2 = migrate.migrated_engine(empty_url)  # already at head: nothing to do, nothing lost
        assert migrate.current(e2) == migrate.head()
        with e2.connect() as conn:
            assert conn.execute(select(Merchant.name)).scalars().all() == ["a"]
        e2.dispose()
    finally:
        e.dispose()


def test_down_to_base_and_up_again(empty: Engine) -> None:
    migrate.upgrade(empty)
    migrate.downgrade(empty, "base")
    assert tables(empty) == set()
    assert migrate.current(empty) is None
    migrate.upgrade(empty)
    assert diff(empty) == []


def test_database_made_by_create_all_before_migrations_is_adopted(empty: Engine) -> None:
    # what create_all made before migrations existed: the baseline's tables, no alembic_version
    migrate.upgrade(empty, migrate.BASELINE)
    with empty.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(insert(Merchant).values(name="old shop", created_at_ms=1))
    assert migrate.current(empty) is None
    migrate.upgrade(empty)
    assert migrate.current(empty) == migrate.head()
    assert diff(empty) == []
    with empty.connect() as conn:
        assert conn.execute(select(Merchant.name)).scalars().all() == ["old shop"]


def test_unversioned_database_of_another_schema_is_refused(empty: Engine) -> None:
    with empty.begin() as conn:
        conn.execute(text("CREATE TABLE merchants (id INTEGER PRIMARY KEY)"))
    with pytest.raises(migrate.SchemaError) as exc:
        migrate.upgrade(empty)
    assert "merchants.name" in exc.value.message and "merchants.name" in exc.value.message_zh
    assert tables(empty) == {"merchants"}  # nothing else made, nothing stamped
    assert migrate.current(empty) is None


def test_two_processes_starting_at_once_migrate_once(empty_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def boot() -> None:
        try:
            start.wait()
            migrate.migrated_engine(empty_url).dispose()  # each its own engine, as separate processes would
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=boot) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    e = make_engine(empty_url)
    try:
        with e.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        assert migrate.current(e) == migrate.head()
        assert diff(e) == []
    finally:
        e.dispose()


def _plaintext_world(engine: Engine) -> tuple[bytes, str]:
    """At revision 0004: a device with its key in plaintext and an account as bare SHA-256."""
    import hashlib

    from sqlalchemy import MetaData, Table

    key, digest = bytes(range(32)), hashlib.sha256(b"1\n13800138000").hexdigest()
    md = MetaData()
    names = ("merchants", "campaigns", "devices", "sharer_accounts")
    t = {n: Table(n, md, autoload_with=engine) for n in names}
    with engine.begin() as conn:
        conn.execute(insert(t["merchants"]).values(id=1, name="shop", created_at_ms=1))
        conn.execute(insert(t["campaigns"]).values(
            id=1, merchant_id=1, base_code="4919", slots=4, digits=2, period_s=60, pool_minor=100,
            rule="red_balloon", rule_params_json="{}", spent_minor=0, hold_s=0, label_zh="a", label_en="a",
            landing_zh="", landing_en="", created_at_ms=1))
        conn.execute(insert(t["devices"]).values(id="00112233aabbccdd", device_key=key, campaign_id=1,
                                                 slot=0, label="", location="", board="", printed=False,
                                                 created_at_ms=1))
        conn.execute(insert(t["sharer_accounts"]).values(merchant_id=1, ref_hash=digest, created_at_ms=1))
    return key, digest


def test_0005_seals_device_keys_in_place_and_downgrade_opens_them(empty: Engine) -> None:
    """Regresses issue 12 (device root keys in plaintext, accounts as bare SHA-256): upgrading a
    database with both seals each key under the master key and keys each account with an HMAC that
    the cloud computes from the reference; without the key it stops and changes nothing; the
    downgrade gives the plaintext keys back."""
    from cloud.services.sharers import account_ref_digest
    from cloud.settings import SettingsError, parse_master_keys
    from cloud.store.vault import Vault
    from tests.cloud.conftest import MASTER_KEY

    migrate.upgrade(empty, "0004")
    key, digest = _plaintext_world(empty)
    with pytest.raises(SettingsError) as exc:
        migrate.upgrade(empty)  # rows to seal, and no key (the test environment sets none)
    assert "MASTER_KEY" in exc.value.message and "主密钥" in exc.value.message_zh
    assert migrate.current(empty) == "0004"
    migrate.upgrade(empty, master_key=MASTER_KEY)
    assert diff(empty) == []
    v = Vault(parse_master_keys(MASTER_KEY))
    with empty.connect() as conn:
        sealed = conn.execute(text("SELECT key_sealed FROM devices")).scalar_one()
        ref = conn.execute(text("SELECT ref_hash FROM sharer_accounts")).scalar_one()
    assert key not in bytes(sealed) and v.open_device_key("00112233aabbccdd", sealed) == key
    assert ref != digest and ref == v.account_refs(account_ref_digest(1, " 138 0013 8000"))[0]
    migrate.downgrade(empty, "0004", master_key=MASTER_KEY)
    with empty.connect() as conn:
        assert bytes(conn.execute(text("SELECT device_key FROM devices")).scalar_one()) == key

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

"""Engine and session factories, and the one dialect-aware insert-or-ignore the app uses."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Insert, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

SessionFactory = sessionmaker[Session]


BUSY_TIMEOUT_S = 10.0


def _wal(cur: Any) -> None:
    """Switch a new database to WAL (the mode is kept in the file, so later connections find it
    set). The switch needs the database to itself and SQLite does not wait for that: while another
    connection holds a lock it fails at once with "database is locked", whatever busy_timeout
    says. Several processes opening one new database at once do hit that, so retry a while."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")  # a no-op for :memory: and a WAL database
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    _wal(cur)
    cur.execute("PRAGMA synchronous=FULL")  # NORMAL can lose committed transactions on power loss
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str = "sqlite:///mcode-cloud.db") -> Engine:
    """An engine for `url`; SQLite gets WAL + synchronous=FULL. It does not touch the schema:
    cloud.store.migrate.migrated_engine (or `upgrade`) brings the database to the newest one."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool  # one shared in-memory database
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_session_factory(engine: Engine) -> SessionFactory:
    return sessionmaker(engine, expire_on_commit=False)


def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]],
                  conflict: Sequence[str], returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """INSERT .. ON CONFLICT (conflict) DO NOTHING; returns the `returning` columns of the rows
    actually inserted (an empty list if `returning` is empty)."""
    if not rows:
        return []
    name = session.get_bind().dialect.name
    stmt: Insert
    if name == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    elif name == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    else:
        raise RuntimeError(f"insert_ignore: unsupported dialect {name}")
    if returning:
        stmt = stmt.returning(*[table.c[c] for c in returning])
        # executemany + RETURNING runs as SQLAlchemy's "insertmanyvalues" batches on SQLite and
        # PostgreSQL; rows skipped by the conflict clause are simply not returned.
        return [tuple(r) for r in session.execute(stmt, list(rows)).all()]
    session.execute(stmt, list(rows))
    return []


def now_ms() -> int:
    return int(time.time() * 1000)


def ping(sf: SessionFactory) -> None:
    """The database answers a query (raises if not)."""
    with sf() as s:
        s.execute(text("SELECT 1"))

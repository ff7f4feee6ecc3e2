"""Schema migrations (Alembic, scripts in cloud/migrations/) on SQLite and PostgreSQL.

Configured here rather than by an alembic.ini, so that it works from any working directory.
Each run holds a lock for its whole transaction: SQLite's write lock (BEGIN IMMEDIATE), or a
PostgreSQL advisory lock, so that two processes starting on one database migrate it once."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from cloud.store.engine import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # the schema create_all made before migrations existed
_PG_LOCK_KEY = 0x6D636F6465  # "mcode": pg_advisory_xact_lock key shared by every migrator


class SchemaError(RuntimeError):
    """A database whose schema migrations cannot take over."""

    def __init__(self, message: str, message_zh: str) -> None:
        super().__init__(f"{message} / {message_zh}")
        self.message, self.message_zh = message, message_zh


def config(connection: Connection | None = None, master_key: str = "") -> Config:
    """`master_key` (the settings' MCODE_CLOUD_MASTER_KEY) is for revisions that seal or open
    stored secrets (0005); without it they read the environment."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")  # %% : ConfigParser interpolation
    cfg.attributes["connection"] = connection
    cfg.attributes["master_key"] = master_key
    return cfg


def head() -> str:
    h = ScriptDirectory.from_config(config()).get_current_head()
    assert h is not None, "cloud/migrations/versions/ has no revision"
    return h


@contextmanager
def _engine(target: Engine | str) -> Iterator[Engine]:
    if isinstance(target, Engine):
        yield target
        return
    engine = make_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection inside one transaction that holds the migration lock."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            # Batch mode rebuilds a table by copy, drop and rename: with foreign keys on, the drop
            # would cascade or fail. The pragma is a no-op inside a transaction, so it goes first;
            # foreign_key_check below makes up for it.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                if sqlite:
                    # pysqlite does not BEGIN before DDL by itself: without this a failed
                    # migration would leave half its tables behind.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                elif engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
                yield conn
                if sqlite:
                    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if bad:
                        raise SchemaError(f"migration broke foreign keys: {bad[:5]}",
                                          f"迁移破坏了外键：{bad[:5]}")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def _baseline_columns() -> dict[str, set[str]]:
    """Table -> column names of revision BASELINE, as built on an in-memory SQLite database."""
    engine = make_engine("sqlite://")
    try:
        upgrade(engine, BASELINE)
        insp = inspect(engine)
        return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()
                if t != "alembic_version"}
    finally:
        engine.dispose()


def _adopt_unversioned(conn: Connection, cfg: Config) -> None:
    """Stamp a database that create_all made before migrations existed (it has the baseline's
    tables and no alembic_version), so that upgrade goes on from there instead of failing."""
    insp = inspect(conn)
    tables = set(insp.get_table_names())
    if "alembic_version" in tables or not tables:
        return
    base = _baseline_columns()  # an empty database: no recursion
    if not tables & base.keys():
        return  # empty (or foreign tables only): migrate from scratch
    have = {t: {c["name"] for c in insp.get_columns(t)} for t in tables & base.keys()}
    if have != base:
        missing = sorted(f"{t}.{c}" for t in have for c in base[t] - have[t]) + sorted(
            base.keys() - tables)
        extra = sorted(f"{t}.{c}" for t in have for c in have[t] - base[t])
        raise SchemaError(
            f"this database has mcode tables but no migration version, and they differ from revision "
            f"{BASELINE} (missing {missing[:8]}, unknown {extra[:8]}): it predates the schema "
            f"migrations; keep a copy and start a new database",
            f"该数据库有 mcode 表但没有迁移版本，且与版本 {BASELINE} 不同（缺少 {missing[:8]}，"
            f"多出 {extra[:8]}）：它早于数据库迁移；请备份后使用新数据库")
    command.stamp(cfg, BASELINE)


def upgrade(target: Engine | str, revision: str = "head", master_key: str = "") -> None:
    """Migrate the database (an Engine, or a URL) to `revision`."""
    with _engine(target) as engine, _locked(engine) as conn:
        cfg = config(conn, master_key)
        _adopt_unversioned(conn, cfg)
        command.upgrade(cfg, revision)


def migrated_engine(url: str, master_key: str = "") -> Engine:
    """An engine for `url` whose database is at the newest schema (made first if it is empty)."""
    engine = make_engine(url)
    try:
        upgrade(engine, master_key=master_key)
    except BaseException:
        engine.dispose()
        raise
    return engine


def downgrade(target: Engine | str, revision: str, master_key: str = "") -> None:
    """Migrate the database back to `revision` ("base": no tables). Loses what later ones added."""
    with _engine(target) as engine, _locked(engine) as conn:
        command.downgrade(config(conn, master_key), revision)


def stamp(target: Engine | str, revision: str) -> None:
    """Record `revision` as the database's version without running anything."""
    with _engine(target) as engine, _locked(engine) as conn:
        command.stamp(config(conn), revision)


def current(target: Engine | str) -> str | None:
    with _engine(target) as engine, engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _next_rev_id() -> str:
    revs = [s.revision for s in ScriptDirectory.from_config(config()).walk_revisions()]
    nums = [int(r) for r in revs if re.fullmatch(r"\d+", r)]
    return f"{max(nums, default=0) + 1:04d}"


def revision(message: str, autogenerate: bool = True, db_url: str = "sqlite://") -> Path:
    """Write the next revision (0002, 0003, ...) into cloud/migrations/versions/. With
    `autogenerate`, it holds the difference between cloud/models.py and the database `db_url` at
    head (by default a new in-memory SQLite one); review it before committing."""
    with _engine(db_url) as engine:
        upgrade(engine)
        with engine.connect() as conn:
            script = command.revision(config(conn), message, autogenerate=autogenerate,
                                      rev_id=_next_rev_id())
    assert script is not None and not isinstance(script, list)
    path = Path(script.path)
    _tidy(path)
    return path


def _tidy(path: Path) -> None:
    """ruff format + import order on a new script, when ruff is at hand (a dev dependency)."""
    ruff = Path(sys.executable).parent / "ruff"
    exe = str(ruff) if ruff.exists() else shutil.which("ruff")
    if exe:
        subprocess.run([exe, "format", "-q", "--line-length", "110", str(path)], check=False)
        subprocess.run([exe, "check", "-q", "--fix", "--select", "I,F401", str(path)], check=False)

"""A throwaway PostgreSQL server for tests: initdb in a temp dir, started on a free loopback port
with fsync on, password auth (scram), stopped and deleted at the end. Databases come from a
template that is migrated once, so a fresh database per test costs one CREATE DATABASE.

As root, the server runs as user postgres (initdb refuses root), so its directory is made under
/tmp and handed to postgres rather than under pytest's root-only tmp dirs."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from sim.ports import free_port

USER = "mcode"
TEMPLATE = "mcode_template"


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl are: $MCODE_PG_BINDIR, else Debian's newest /usr/lib/postgresql/N/bin."""
    if os.environ.get("MCODE_PG_BINDIR"):
        return Path(os.environ["MCODE_PG_BINDIR"])
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def unavailable(reason: str) -> None:
    """No server: always a failure, like any other missing part (./run test installs PostgreSQL).
    Without it, run only the SQLite half: pytest -k "not postgresql"."""
    pytest.fail(f"PostgreSQL: {reason} (`./run test` installs it; or deselect with -k 'not postgresql')",
                pytrace=False)


class PgCluster:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.root = Path()
        self.start_s = 0.0  # initdb + start, seconds
        self._names = itertools.count(1)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="pg-ahead")
        self._ahead: Future[str] | None = None

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=120)

    def start(self) -> PgCluster:
        t0 = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix="mcode-pg-"))
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        # --no-sync: initdb's own final fsync only; the server below runs with fsync on.
        r = self._run("initdb", "-D", "data", "-U", USER, "--auth=scram-sha-256", f"--pwfile={pwfile}",
                      "-E", "UTF8", "--locale=C", "--no-sync")
        pwfile.unlink()
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stdout}{r.stderr}")
        for _ in range(5):  # another process may take the free port before the server binds it
            self.port = free_port()
            opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
                    " -c fsync=on -c synchronous_commit=on -c max_connections=200")
            r = self._run("pg_ctl", "-D", "data", "-l", "server.log", "-w", "-t", "60", "-o", opts, "start")
            if r.returncode == 0:
                break
        else:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}\n{log}")
        self.start_s = time.monotonic() - t0
        return self

    def stop(self) -> None:
        self._pool.shutdown(wait=True)  # a copy being made ahead goes with the cluster
        if self.port:
            self._run("pg_ctl", "-D", "data", "-m", "fast", "-w", "stop")
            self.port = 0
        if self.root != Path() and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{USER}:{self.password}@127.0.0.1:{self.port}/{db}"

    def sql(self, statement: str, db: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        with psycopg.connect(self.url(db, "postgresql"), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # our own literal SQL

    def create_database(self, template: str = "template0") -> str:
        name = f"t{os.getpid()}_{next(self._names)}"
        assert re.fullmatch(r"\w+", template)
        # WAL_LOG (PostgreSQL 15's default) copies block by block through the WAL; FILE_COPY
        # would checkpoint twice per database.
        self.sql(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY WAL_LOG")
        return name

    def drop_database(self, name: str) -> None:
        assert re.fullmatch(r"\w+", name)
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    @contextmanager
    def database(self, template: str = "template0") -> Iterator[str]:
        """A new database (its URL), dropped afterwards. Copies of TEMPLATE are made one ahead, in
        the background while a test runs: a copy takes 0.2-0.4 s here, most of it waiting on fsync."""
        if template == TEMPLATE:
            ahead, self._ahead = self._ahead, self._pool.submit(self.create_database, TEMPLATE)
            name = ahead.result() if ahead is not None else self.create_database(TEMPLATE)
        else:
            name = self.create_database(template)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)

    def make_template(self) -> None:
        """TEMPLATE: an empty database migrated to head, for per-test copies."""
        from cloud.store.migrate import upgrade

        self.sql(f"CREATE DATABASE {TEMPLATE} TEMPLATE template0")
        upgrade(self.url(TEMPLATE))  # disposes its engine: a template must have no connections


def start_cluster() -> PgCluster:
    """A running cluster with TEMPLATE made, or a failure saying why not."""
    bindir = find_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        unavailable("initdb/pg_ctl not found under /usr/lib/postgresql/*/bin (Debian package postgresql)")
        raise AssertionError("unreachable")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("running as root but runuser is missing (initdb refuses root)")
    cluster = PgCluster(bindir)
    try:
        cluster.start()
        cluster.make_template()
    except Exception:
        cluster.stop()
        raise
    return cluster

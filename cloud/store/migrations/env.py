"""Alembic environment. cloud/migrate.py runs it with an open Connection, inside a transaction it
owns (so the SQLite write lock or the PostgreSQL advisory lock is already held)."""

from __future__ import annotations

from alembic import context

from cloud.store.models import Base


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through cloud.store.migrate (`mcode cloud db ...`), "
                           "not the alembic CLI")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # batch mode: on SQLite an ALTER that SQLite lacks becomes copy-and-rename of the table;
        # on PostgreSQL batch_alter_table is plain ALTER TABLE.
        render_as_batch=True,
        compare_type=True,
        transactional_ddl=True,  # cloud/migrate.py opened a real transaction on SQLite too
    )
    with context.begin_transaction():
        context.run_migrations()


_run()

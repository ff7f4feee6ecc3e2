"""Alembic migrations: see cloud/migrate.py."""

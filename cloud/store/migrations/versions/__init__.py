"""Revisions, applied in order by cloud/migrate.py."""

"""The store: the engine (engine.py), the tables (models.py) and schema migrations (migrate.py,
migrations/). It imports no service."""

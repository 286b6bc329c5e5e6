"""Alembic migrations of the audit trail; applied by ``Store.migrate`` (see ``services/recorder/migrate.py``)."""

"""Alembic environment: runs on the connection ``services.recorder.migrate`` hands over (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from services.recorder.migrate import VERSION_TABLE
from services.recorder.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()

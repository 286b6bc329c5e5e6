"""Engine creation and schema migrations (Alembic, driven from code; there is no alembic.ini).

``upgrade(engine)`` brings an empty or older database to the newest schema. It is safe to call from
several processes at once: on PostgreSQL the migration holds a transaction-scoped advisory lock, on
SQLite the database file's write lock serialises them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from services.recorder.errors import DatabaseUnavailableError, MigrationError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "recorder_alembic_version"
_ADVISORY_LOCK = 0x55510009  # any constant; identifies "recorder schema migration"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` for psycopg 3 (the installed driver)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def create(url: str) -> Engine:
    """A SQLAlchemy engine for ``url``; for an SQLite file, its folder is created and WAL mode is on."""
    url = normalise_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=5)
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it takes the write lock at BEGIN (``BEGIN IMMEDIATE``),
    so two writers queue on ``busy_timeout`` instead of failing when one upgrades a read lock."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            yield conn


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling skips BEGIN before DDL; SQLAlchemy emits it instead
    # (_sqlite_begin), so migrations are transactional too.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # writers queue for the lock instead of failing
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the gateway) never block the recorder
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; a crash loses no committed page
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def upgrade(engine: Engine) -> None:
    """Apply every migration not applied yet (Alembic ``upgrade head``)."""
    url = engine.url.render_as_string(hide_password=False)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        raise DatabaseUnavailableError(url, exc.orig or exc) from exc
    try:
        with write_transaction(engine) as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise MigrationError(url, exc) from exc


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str:
    """The newest revision shipped with this code (what :func:`upgrade` brings a database to)."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None, "no migrations shipped"
    return head

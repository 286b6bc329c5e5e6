"""Migrations from an empty database, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from services.recorder import migrate
from services.recorder.models import Base
from services.recorder.store import Store

TABLES = {"sessions", "tokens", "alerts", "summaries"}


def _wipe(url: str) -> None:
    engine = migrate.create(url)
    with engine.begin() as conn:
        for table in (*TABLES, migrate.VERSION_TABLE):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    engine.dispose()


def test_from_empty_to_head_creates_exactly_the_models(database_url: str) -> None:
    _wipe(database_url)
    engine = migrate.create(database_url)
    assert migrate.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) & TABLES == set()

    migrate.upgrade(engine)

    assert migrate.current_revision(engine) == migrate.head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": migrate.VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_upgrade_is_idempotent_and_safe_from_several_threads(database_url: str) -> None:
    _wipe(database_url)
    errors: list[BaseException] = []

    def run() -> None:
        engine = migrate.create(database_url)
        try:
            migrate.upgrade(engine)
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    engine = migrate.create(database_url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_downgrade_to_empty_and_back(database_url: str) -> None:
    engine = migrate.create(database_url)
    migrate.upgrade(engine)
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) & TABLES == set()

    migrate.upgrade(engine)

    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


async def test_a_store_nobody_migrated_migrates_on_first_use(database_url: str) -> None:
    _wipe(database_url)
    store = Store.from_url(database_url)

    assert await store.list_sessions() == ([], 0)

    assert migrate.current_revision(store.engine) == migrate.head_revision()
    await store.close()


def test_postgres_urls_without_a_driver_get_psycopg() -> None:
    assert migrate.normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert migrate.normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert migrate.normalise_url("sqlite:///data/uq.sqlite3") == "sqlite:///data/uq.sqlite3"


def test_an_sqlite_file_gets_its_folder(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "a" / "b"
    engine = migrate.create(f"sqlite:///{folder / 'uq.sqlite3'}")
    migrate.upgrade(engine)
    engine.dispose()

    assert (folder / "uq.sqlite3").is_file()


async def test_a_summary_recorded_before_0002_reads_back_with_its_firings(database_url: str) -> None:
    """Revision 0002 names the summary's counts; a row written under 0001 keeps its meaning."""
    _wipe(database_url)
    engine = migrate.create(database_url)
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.exec_driver_sql(
            "INSERT INTO sessions (session_id, status, status_seq, created_ns, updated_ns, tokens, alerts, risk, "
            "risk_seq) VALUES ('old', 'finished', 2, 1, 2, 3, 1, 'warning', 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO summaries (session_id, seq, ts_ns, tokens, alerts_by_rule, final_risk, status) "
            """VALUES ('old', 1, 2, 3, '{"LOW_CONFIDENCE": 3}', 'warning', 'finished')"""
        )
    engine.dispose()
    store = Store.from_url(database_url)

    history = await store.get_session("old")

    assert history is not None and history.session.summary is not None
    summary = history.session.summary
    assert (summary.firings_by_rule, summary.alerts_by_rule) == ({"LOW_CONFIDENCE": 3}, {"LOW_CONFIDENCE": 3})
    assert summary.alerts_sent_by_rule is None  # not counted then
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    await store.close()


def test_upgrade_from_0002_keeps_summaries_and_takes_their_final_level_as_peak(database_url: str) -> None:
    _wipe(database_url)
    engine = migrate.create(database_url)
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO summaries (session_id, seq, ts_ns, tokens, alerts_by_rule, final_risk, status) "
                "VALUES ('old', 3, 1, 5, '{}', 'critical', 'finished')"
            )
        )

    migrate.upgrade(engine)

    assert migrate.current_revision(engine) == migrate.head_revision() == "0006"
    with engine.connect() as conn:
        row = conn.execute(text("SELECT peak_risk, p_wrong, answer_scores FROM summaries")).one()
    assert tuple(row) == ("critical", None, None)
    engine.dispose()


def test_upgrade_to_0006_backfills_each_sessions_peak_from_its_risk_changes(database_url: str) -> None:
    _wipe(database_url)
    engine = migrate.create(database_url)
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    with engine.begin() as conn:
        for sid in ("peaked", "calm"):
            conn.execute(
                text(
                    "INSERT INTO sessions (session_id, status, status_seq, created_ns, updated_ns, tokens, alerts, "
                    f"risk, risk_seq) VALUES ('{sid}', 'finished', 3, 1, 2, 5, 0, 'safe', 1)"
                )
            )
        for seq, level in enumerate(("critical", "safe")):
            conn.execute(
                text(
                    "INSERT INTO alerts (session_id, seq, ts_ns, kind, token_seq, level) "
                    f"VALUES ('peaked', {seq}, 1, 'risk', {seq}, '{level}')"
                )
            )

    migrate.upgrade(engine)

    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT session_id, peak_rank FROM sessions")).all())
    assert rows == {"peaked": 2, "calm": 0}
    engine.dispose()

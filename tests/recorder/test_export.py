"""Export to JSONL and CSV, through the store and the command line."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from services.common.contracts import AuditEvent
from services.common.contracts.events import AlertStreamEvent
from services.common.contracts.history import SessionRecord
from services.recorder import cli, migrate
from services.recorder.errors import ExportError
from services.recorder.export import CSV_COLUMNS
from services.recorder.store import Store
from tests.recorder.conftest import expected_history, session_events

T0 = 1_700_000_000_000_000_000
HOUR = 3_600 * 10**9
ALERT_STREAM: TypeAdapter[object] = TypeAdapter(AlertStreamEvent)


async def _text(store: Store, **kwargs: object) -> str:
    return "".join([chunk async for chunk in store.export(**kwargs)])  # type: ignore[arg-type]


async def test_jsonl_of_one_session_holds_every_entry_in_order(store: Store) -> None:
    events = session_events("s-1")
    await store.record(events + session_events("other"))
    expected = expected_history(events)

    lines = (await _text(store, session_id="s-1")).splitlines()

    head = json.loads(lines[0])
    assert head.pop("type") == "session_record"
    assert SessionRecord.model_validate({**head, "summary": expected.session.summary}) == expected.session
    assert [AuditEvent.model_validate_json(line) for line in lines[1:21]] == expected.tokens
    rest = [ALERT_STREAM.validate_json(line) for line in lines[21:]]
    assert rest == [
        expected.alerts[0],
        expected.risks[0],
        expected.alerts[1],
        expected.risks[1],
        expected.session.summary,
    ]


async def test_csv_has_one_row_per_token_with_metrics_alerts_and_risk(store: Store) -> None:
    events = session_events("s-1")
    await store.record(events)

    rows = list(csv.DictReader(io.StringIO(await _text(store, session_id="s-1", fmt="csv"))))

    audits = expected_history(events).tokens
    assert len(rows) == len(audits) == 20
    assert tuple(rows[0]) == CSV_COLUMNS
    for row, audit in zip(rows, audits, strict=True):
        assert (row["session_id"], int(row["seq"]), row["text"]) == ("s-1", audit.seq, audit.text)
        assert row["token_id"] == ("" if audit.token_id is None else str(audit.token_id))
        for name in ("prob", "entropy", "margin", "hbar_s", "coverage"):
            value = getattr(audit.metrics, name)
            assert row[name] == ("" if value is None else repr(value)), name
            if value is not None:
                assert math.isclose(float(row[name]), value, rel_tol=0, abs_tol=0)
        assert row["exact"] == ("true" if audit.metrics.exact else "false")
        assert json.loads(row["top_k"]) == [a.model_dump() for a in audit.top_k]
    assert [row["alerts"] for row in rows[:7]] == ["", "", "", "LOW_CONFIDENCE", "", "HIGH_UNCERTAINTY", ""]
    assert [row["risk"] for row in rows[:7]] == ["safe"] * 3 + ["warning"] * 2 + ["critical"] * 2


async def test_a_time_range_exports_the_sessions_created_in_it(store: Store) -> None:
    for i in range(4):
        await store.record(session_events(f"s{i}", n_tokens=2, t0=T0 + i * HOUR))

    text = await _text(store, since_ns=T0 + HOUR, until_ns=T0 + 3 * HOUR)
    everything = await _text(store)

    heads = [json.loads(line)["session_id"] for line in text.splitlines() if '"type": "session_record"' in line]
    assert heads == ["s1", "s2"]
    assert len(everything.splitlines()) == 4 * (1 + 2 + 5)


async def test_csv_of_an_empty_range_is_the_header_alone(store: Store) -> None:
    await store.record(session_events("s0", n_tokens=2, t0=T0))

    assert await _text(store, since_ns=T0 + HOUR, fmt="csv") == ",".join(CSV_COLUMNS) + "\n"


async def test_bad_export_requests_are_refused_with_the_reason(store: Store) -> None:
    with pytest.raises(ExportError, match="unknown export format 'xml'"):
        await _text(store, fmt="xml")
    with pytest.raises(ExportError, match="before its start"):
        await _text(store, since_ns=T0, until_ns=T0 - 1)


@pytest.fixture
def recorded(database_url: str) -> str:
    """A database holding two sessions an hour apart (recorded synchronously, for the CLI tests)."""
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    with store.engine.begin() as conn:
        for table in ("tokens", "alerts", "summaries", "sessions"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    store.record_sync(session_events("early", n_tokens=3, t0=T0))
    store.record_sync(session_events("late", n_tokens=3, t0=T0 + HOUR))
    store.engine.dispose()
    return database_url


def test_cli_exports_one_session_to_a_file(recorded: str, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"

    assert (
        cli.main(["export", "--database-url", recorded, "--session", "late", "--format", "csv", "--out", str(out)]) == 0
    )

    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["session_id"], r["seq"]) for r in rows] == [("late", "0"), ("late", "1"), ("late", "2")]


def test_cli_exports_a_time_range_as_jsonl(recorded: str, capsys: pytest.CaptureFixture[str]) -> None:
    # T0 is 2023-11-14T22:13:20Z; "late" was created an hour later.
    code = cli.main(["export", "--database-url", recorded, "--since", "2023-11-14T22:30:00", "--until", "2023-11-15"])

    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert {json.loads(line)["session_id"] for line in lines} == {"late"}
    assert json.loads(lines[0])["type"] == "session_record"
    assert len(lines) == 1 + 3 + 5


def test_cli_says_so_when_the_session_is_unknown(recorded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export", "--database-url", recorded, "--session", "nope"]) == 1
    assert "no session 'nope'" in capsys.readouterr().err


def test_cli_refuses_a_bad_time(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "'yesterday' is not an ISO 8601 date" in capsys.readouterr().err


def test_iso_times_are_utc_unless_zoned() -> None:
    assert cli.parse_time("2023-11-14T22:13:20") == T0
    assert cli.parse_time("2023-11-14T23:13:20+01:00") == T0
    assert cli.parse_time("2023-11-14T22:13:20.5Z") == T0 + 500_000_000


def test_cli_migrate_brings_an_empty_database_to_the_newest_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'uq.sqlite3'}"

    assert cli.main(["migrate", "--database-url", url]) == 0

    engine = migrate.create(url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


async def test_exports_carry_non_finite_metrics_as_null(store: Store) -> None:
    """A foreign producer's audit with an infinite metric (the contract allows any float >= 0) is exported
    as null in JSONL and an empty cell in CSV, never ``inf``."""
    events = session_events("s-inf", n_tokens=2)
    events = [
        e.model_copy(update={"metrics": e.metrics.model_copy(update={"surprisal": math.inf, "hbar_s": math.inf})})
        if isinstance(e, AuditEvent) and e.seq == 1
        else e
        for e in events
    ]
    await store.record(events)
    rows = list(csv.DictReader(io.StringIO(await _text(store, session_id="s-inf", fmt="csv"))))
    assert [(r["seq"], r["surprisal"], r["hbar_s"]) for r in rows] == [("0", "0.0", "0.0"), ("1", "", "")]
    lines = [json.loads(line) for line in (await _text(store, session_id="s-inf")).splitlines()]
    tokens = [line for line in lines if line.get("type") == "audit"]
    assert [(t["metrics"]["surprisal"], t["metrics"]["hbar_s"]) for t in tokens] == [(0.0, 0.0), (None, None)]

"""Databases for the recorder's tests: every test module runs on SQLite and on the real PostgreSQL.

PostgreSQL is ``UQ_TEST_POSTGRES`` (default: postgresql://postgres@127.0.0.1:5432/test, trust auth);
each test module gets a uniquely named database, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from services.common.contracts import (
    RISK_LEVELS,
    AlertEvent,
    AuditEvent,
    Event,
    Metrics,
    RiskEvent,
    SessionEvent,
    SummaryEvent,
    TopKAlternative,
    Verification,
)
from services.common.contracts.history import SessionHistory, SessionRecord
from services.recorder.store import Store

POSTGRES = os.environ.get("UQ_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"no PostgreSQL at {POSTGRES} ({exc}): start it or set UQ_TEST_POSTGRES")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database of each kind, private to the test module."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('recorder') / 'uq.sqlite3'}"
        return
    name = f"uqtest_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(POSTGRES).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
        )
    finally:
        with _admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store with no rows in it."""
    s = Store.from_url(database_url)
    await s.migrate()
    with s.engine.begin() as conn:
        for table in ("tokens", "alerts", "summaries", "sessions"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    yield s
    await s.close()


def session_events(session_id: str, n_tokens: int = 20, *, t0: int = 1_700_000_000_000_000_000) -> list[Event]:
    """A whole session as the streams carry it: lifecycle, audits, alerts, risk changes, summary.

    Every field the store keeps is set to a distinctive value (including nulls and unicode).
    """
    events: list[Event] = [
        SessionEvent(session_id=session_id, seq=0, ts_ns=t0, status="queued", prompt="Explain AI ✓", model="m-1"),
        SessionEvent(
            session_id=session_id, seq=1, ts_ns=t0 + 1, status="started", model="m-1", provider="transformers"
        ),
    ]
    for i in range(n_tokens):
        exact = i % 3 != 2
        metrics = Metrics(
            prob=1 / (i + 2),
            surprisal=0.1 * i,
            entropy=0.05 * i + 0.01,
            margin=None if i % 4 == 0 else 0.25,
            rank=i % 5 + 1,
            hbar_s=0.123456789 * i,
            fisher_trace=0.5 if exact else None,
            varentropy=0.3 if exact else None,
            coverage=None if exact else 0.9,
            exact=exact,
        )
        events.append(
            AuditEvent(
                session_id=session_id,
                seq=i,
                ts_ns=t0 + 10 + i,
                token_id=None if i == 1 else 100 + i,
                text=f" tok{i}é" if i % 2 else ',"\n',
                distribution="full" if exact else "top_k",
                metrics=metrics,
                top_k=[
                    TopKAlternative(token_id=100 + i, text=f" tok{i}é", logprob=-0.5),
                    TopKAlternative(token_id=None, text="…", logprob=-2.25),
                ],
                model="m-1",
                token_ts_ns=t0 + 5 + i,
            )
        )
    alerts: list[Event] = [
        AlertEvent(
            session_id=session_id,
            seq=0,
            ts_ns=t0 + 100,
            rule="LOW_CONFIDENCE",
            severity="warning",
            message="p = 0.12 below 0.30",
            token_seq=3,
            token_text=" tok3é",
            values={"prob": 0.12, "hbar_s": None},
        ),
        RiskEvent(
            session_id=session_id,
            seq=1,
            ts_ns=t0 + 101,
            level="warning",
            previous="safe",
            reason="1 alert",
            token_seq=3,
        ),
        AlertEvent(
            session_id=session_id,
            seq=2,
            ts_ns=t0 + 102,
            rule="HIGH_UNCERTAINTY",
            severity="critical",
            message="ℏₛ = 2.7 above 2.5",
            token_seq=5,
            token_text=" tok5é",
            values={"hbar_s": 2.7},
        ),
        RiskEvent(
            session_id=session_id,
            seq=3,
            ts_ns=t0 + 103,
            level="critical",
            previous="warning",
            reason="critical alert",
            token_seq=5,
        ),
        SummaryEvent(
            session_id=session_id,
            seq=4,
            ts_ns=t0 + 200,
            tokens=n_tokens,
            firings_by_rule={"LOW_CONFIDENCE": 3, "HIGH_UNCERTAINTY": 1},
            alerts_sent_by_rule={"LOW_CONFIDENCE": 1, "HIGH_UNCERTAINTY": 1},
            max_hbar_s=2.7,
            mean_hbar_s=1.25,
            mean_entropy=0.5,
            perplexity=1.75,
            nll_bits=12.5,
            low_confidence_share=0.1,
            final_risk="critical",
            status="finished",
            verification=Verification(
                samples=["Paris", "Ly\x00on"],  # U+0000 survives PostgreSQL's JSON too
                answer="Paris",
                temperature=1.0,
                exact=0.5,
                lexical=0.5,
                embedding=0.75,
                consistency=0.5,
            ),
        ),
    ]
    events += alerts
    events.append(
        SessionEvent(session_id=session_id, seq=2, ts_ns=t0 + 300, status="finished", reason="eos", tokens=n_tokens)
    )
    return events


def expected_history(events: list[Event]) -> SessionHistory:
    """What the store must give back for one session's events, worked out without the store."""
    lifecycle = sorted((e for e in events if isinstance(e, SessionEvent)), key=lambda e: e.seq)
    audits = sorted((e for e in events if isinstance(e, AuditEvent)), key=lambda e: e.seq)
    fired = sorted((e for e in events if isinstance(e, AlertEvent)), key=lambda e: e.seq)
    risks = sorted((e for e in events if isinstance(e, RiskEvent)), key=lambda e: e.seq)
    summary = [e for e in events if isinstance(e, SummaryEvent)]
    record = SessionRecord(
        session_id=events[0].session_id,
        status=lifecycle[-1].status,
        model=next((e.model for e in lifecycle if e.model), None),
        provider=next((e.provider for e in lifecycle if e.provider), None),
        prompt=next((e.prompt for e in lifecycle if e.prompt), None),
        reason=lifecycle[-1].reason,
        created_ns=min(e.ts_ns for e in events),
        updated_ns=max(e.ts_ns for e in events),
        tokens=len(audits),
        alerts=len(fired),
        risk=risks[-1].level if risks else "safe",
        peak_risk=max((r.level for r in risks), key=RISK_LEVELS.index, default="safe"),
        summary=summary[-1] if summary else None,
    )
    return SessionHistory(session=record, tokens=audits, alerts=fired, risks=risks)

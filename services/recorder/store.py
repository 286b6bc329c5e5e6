"""The audit trail store: the recorder's writes (batches of stream entries, retention) and its schema.

:class:`Store` is the recorder's; its reads are those of services.recorder.query.History, which the
gateway uses on its own (it cannot migrate).
The database work is synchronous SQLAlchemy run in a worker thread (``asyncio.to_thread``), so no
method blocks the event loop. Construction does not touch the database; the schema is brought up to date
by ``await store.migrate()`` (idempotent, safe from several processes at once) or, when nobody called
it, by the first method that uses the database.

Writes are idempotent: entry rows are inserted with insert-or-ignore on their primary key
``(session_id, seq)``, and the session's counters grow only by the rows actually inserted, so an
entry delivered twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from services.common.contracts import (
    RISK_LEVELS,
    AlertEvent,
    AuditEvent,
    Event,
    RiskEvent,
    SessionEvent,
    SummaryEvent,
    now_ns,
)
from services.recorder import migrate as migrations
from services.recorder.escape import escaped, needs_escape
from services.recorder.models import alerts, sessions, summaries
from services.recorder.query import History
from services.recorder.rows import (
    AUDITS_JSON,
    PG_INSERT_TOKENS,
    SQLITE_INSERT_TOKENS,
    alert_row,
    as_stored,
    summary_row,
    token_row,
)

_NS_PER_DAY = 86_400 * 1_000_000_000
_DELETE_CHUNK = 500


@dataclass
class RecordCounts:
    """What one ``record`` call inserted (duplicates are not counted)."""

    tokens: int = 0
    alerts: int = 0
    risks: int = 0
    summaries: int = 0
    sessions: int = 0
    ignored: int = 0


@dataclass
class _SessionDelta:
    """How one batch changes one session's row."""

    first_ns: int
    last_ns: int
    tokens: int = 0
    alerts: int = 0
    status: str | None = None
    status_seq: int = -1
    reason: str | None = None
    model: str | None = None
    provider: str | None = None
    prompt: str | None = None
    risk: str | None = None
    risk_seq: int = -1
    peak_rank: int = 0
    seen: set[str] = field(default_factory=set)

    def touch(self, ts_ns: int) -> None:
        self.first_ns = min(self.first_ns, ts_ns)
        self.last_ns = max(self.last_ns, ts_ns)

    def set_status(self, status: str, seq: int, reason: str | None = None) -> None:
        if seq > self.status_seq:
            self.status, self.status_seq, self.reason = status, seq, reason


class Store(History):
    """The audit trail in SQLite or PostgreSQL: the recorder's writes, and the reads of :class:`History`."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._migrate_lock = threading.Lock()
        self._migrated = False

    @classmethod
    def from_url(cls, url: str) -> Store:
        """A store on ``url`` (e.g. ``sqlite:///data/uq.sqlite3``, ``postgresql+psycopg://user@host/db``).

        Creates the engine (and an SQLite file's folder) and connects lazily; the schema is migrated by
        ``await migrate()`` or on first use.
        """
        return cls(migrations.create(url))

    async def migrate(self) -> None:
        """Bring the schema up to date (Alembic ``upgrade head``)."""
        await asyncio.to_thread(self._migrate)

    def _migrate(self) -> None:
        with self._migrate_lock:
            migrations.upgrade(self.engine)
            self._migrated = True

    def _ready(self) -> None:
        """The recorder owns the schema: it brings it up to date before its first use."""
        if not self._migrated:
            self._migrate()

    # --- writing --------------------------------------------------------------------------------

    async def record(self, events: Sequence[Event]) -> RecordCounts:
        """Write a batch of ``uq:sessions``, ``uq:audits`` and ``uq:alerts`` entries in one transaction."""
        return await asyncio.to_thread(self.record_sync, events)

    def record_sync(self, events: Sequence[Event]) -> RecordCounts:
        self._ready()
        counts = RecordCounts()
        deltas: dict[str, _SessionDelta] = {}
        audits: list[AuditEvent] = []
        alert_rows: list[dict[str, Any]] = []
        summary_rows: list[dict[str, Any]] = []
        for e in events:
            if not isinstance(e, AuditEvent | AlertEvent | RiskEvent | SummaryEvent | SessionEvent):
                counts.ignored += 1
                continue
            if not isinstance(e, AuditEvent):  # audits: checked cheaply where they are serialised
                e = as_stored(e)  # U+0000 escaped: services/recorder/escape.py
            delta = deltas.get(e.session_id)
            if delta is None:
                delta = deltas[e.session_id] = _SessionDelta(e.ts_ns, e.ts_ns)
            delta.touch(e.ts_ns)
            if isinstance(e, AuditEvent):
                audits.append(e)
                delta.set_status("started", 1)  # tokens flowing imply the session started
            elif isinstance(e, AlertEvent | RiskEvent):
                alert_rows.append(alert_row(e))
                if isinstance(e, RiskEvent):
                    delta.peak_rank = max(delta.peak_rank, RISK_LEVELS.index(e.level))
                    if e.seq > delta.risk_seq:
                        delta.risk, delta.risk_seq = e.level, e.seq
            elif isinstance(e, SummaryEvent):
                summary_rows.append(summary_row(e))
            elif isinstance(e, SessionEvent):
                delta.set_status(e.status, e.seq, e.reason)
                delta.model = delta.model or e.model
                delta.provider = delta.provider or e.provider
                delta.prompt = delta.prompt or e.prompt
        if not deltas:
            return counts
        if self._write_lock is None:
            self._write(deltas, audits, alert_rows, summary_rows, counts)
        else:
            with self._write_lock:
                self._write(deltas, audits, alert_rows, summary_rows, counts)
        return counts

    def _write(
        self,
        deltas: dict[str, _SessionDelta],
        audits: list[AuditEvent],
        alert_rows: list[dict[str, Any]],
        summary_rows: list[dict[str, Any]],
        counts: RecordCounts,
    ) -> None:
        order = sorted(deltas)  # one lock order for every writer: no deadlocks between replicas
        with migrations.write_transaction(self.engine) as conn:
            new = conn.execute(
                self._insert_ignore(sessions).returning(sessions.c.session_id),
                [_new_session_row(sid, deltas[sid]) for sid in order],
            )
            counts.sessions = len(new.all())
            if audits:
                for sid, n in self._insert_tokens(conn, audits).items():
                    deltas[sid].tokens += n
                    counts.tokens += n
            if alert_rows:
                inserted = conn.execute(
                    self._insert_ignore(alerts).returning(alerts.c.session_id, alerts.c.kind), alert_rows
                )
                for sid, kind in inserted:
                    if kind == "alert":
                        deltas[sid].alerts += 1
                        counts.alerts += 1
                    else:
                        counts.risks += 1
            if summary_rows:
                counts.summaries = len(
                    conn.execute(self._insert_ignore(summaries).returning(summaries.c.session_id), summary_rows).all()
                )
            conn.execute(_UPDATE_SESSION, [_update_params(sid, deltas[sid]) for sid in order])

    def _insert_tokens(self, conn: Connection, audits: list[AuditEvent]) -> Counter[str]:
        """Insert-or-ignore the audits' token rows; how many were new, by session.

        The hot path, so it bypasses SQLAlchemy's statement building. PostgreSQL: the whole batch as
        one JSON array parameter (serialised in one pydantic-core call), unpacked by the server with
        ``jsonb_array_elements`` in one ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING``, counted
        by session on the server.
        SQLite: one ``executemany`` per session, counted by ``rowcount``.
        """
        inserted: Counter[str] = Counter()
        if self.dialect == "postgresql":
            payload = AUDITS_JSON.dump_json(audits).decode()
            if needs_escape(payload):  # some text holds U+0000 or U+0010 (or looks so: harmless to redo)
                payload = AUDITS_JSON.dump_json([escaped(a) for a in audits]).decode()
            for sid, n in conn.exec_driver_sql(PG_INSERT_TOKENS, (payload,)):
                inserted[sid] += n
            return inserted
        by_session: dict[str, list[tuple[Any, ...]]] = {}
        for audit in audits:
            by_session.setdefault(audit.session_id, []).append(token_row(audit))
        for sid, rows in by_session.items():
            inserted[sid] += conn.exec_driver_sql(SQLITE_INSERT_TOKENS, rows).rowcount
        return inserted

    def _insert_ignore(self, table: Table) -> Insert:
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if self.dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        raise NotImplementedError(f"the recorder supports sqlite and postgresql, not {self.dialect}")

    # --- forgetting -----------------------------------------------------------------------------

    async def apply_retention(self, days: float) -> int:
        """Delete the sessions not updated for ``days`` days (0: keep everything); returns how many."""
        if days <= 0:
            return 0
        cutoff = now_ns() - int(days * _NS_PER_DAY)
        return await asyncio.to_thread(self._delete_older, cutoff)

    def _delete_older(self, cutoff_ns: int) -> int:
        self._ready()
        with self.engine.connect() as conn:
            old = list(conn.execute(select(sessions.c.session_id).where(sessions.c.updated_ns < cutoff_ns)).scalars())
        deleted = 0
        for i in range(0, len(old), _DELETE_CHUNK):
            deleted += self._delete(old[i : i + _DELETE_CHUNK])
        return deleted


_UPDATE_SESSION = (
    update(sessions)
    .where(sessions.c.session_id == bindparam("sid"))
    .values(
        created_ns=case(
            (sessions.c.created_ns <= bindparam("first_ns"), sessions.c.created_ns), else_=bindparam("first_ns")
        ),
        updated_ns=case(
            (sessions.c.updated_ns >= bindparam("last_ns"), sessions.c.updated_ns), else_=bindparam("last_ns")
        ),
        tokens=sessions.c.tokens + bindparam("n_tokens"),
        alerts=sessions.c.alerts + bindparam("n_alerts"),
        status=case(
            (sessions.c.status_seq < bindparam("status_seq"), bindparam("new_status")), else_=sessions.c.status
        ),
        reason=case(
            (
                sessions.c.status_seq < bindparam("status_seq"),
                func.coalesce(bindparam("new_reason"), sessions.c.reason),
            ),
            else_=sessions.c.reason,
        ),
        status_seq=case(
            (sessions.c.status_seq < bindparam("status_seq"), bindparam("status_seq")), else_=sessions.c.status_seq
        ),
        model=func.coalesce(sessions.c.model, bindparam("new_model")),
        provider=func.coalesce(sessions.c.provider, bindparam("new_provider")),
        prompt=func.coalesce(sessions.c.prompt, bindparam("new_prompt")),
        risk=case((sessions.c.risk_seq < bindparam("risk_seq"), bindparam("new_risk")), else_=sessions.c.risk),
        risk_seq=case((sessions.c.risk_seq < bindparam("risk_seq"), bindparam("risk_seq")), else_=sessions.c.risk_seq),
        peak_rank=case(
            (sessions.c.peak_rank < bindparam("peak_rank"), bindparam("peak_rank")), else_=sessions.c.peak_rank
        ),
    )
)


def _new_session_row(session_id: str, d: _SessionDelta) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "status": "started",
        "status_seq": -1,
        "created_ns": d.first_ns,
        "updated_ns": d.last_ns,
        "tokens": 0,
        "alerts": 0,
        "risk": "safe",
        "risk_seq": -1,
        "peak_rank": 0,
    }


def _update_params(session_id: str, d: _SessionDelta) -> dict[str, Any]:
    return {
        "sid": session_id,
        "first_ns": d.first_ns,
        "last_ns": d.last_ns,
        "n_tokens": d.tokens,
        "n_alerts": d.alerts,
        "new_status": d.status or "started",
        "status_seq": d.status_seq,
        "new_reason": d.reason,
        "new_model": d.model,
        "new_provider": d.provider,
        "new_prompt": d.prompt,
        "new_risk": d.risk or "safe",
        "risk_seq": d.risk_seq,
        "peak_rank": d.peak_rank,
    }

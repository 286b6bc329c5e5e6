"""Reading the audit trail: what the gateway uses of the recorder's database. It never migrates.

The recorder owns the schema (services.recorder.store.Store writes it and brings it up to date with
Alembic). :class:`History` only reads it: before its first query it checks that the database is at
the revision this code knows, and otherwise says so (:class:`~services.recorder.errors.SchemaNotReadyError`:
the recorder has not created or migrated it yet) instead of touching the schema. Its one write is
:meth:`History.delete_session`, a user's request to forget a session (``DELETE /sessions/{id}``),
which deletes rows and changes no table.

``Store`` extends it with the recorder's writes; the reads are these, whoever runs them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, select

from services.common.contracts import RISK_LEVELS, AlertEvent, RiskEvent, SummaryEvent
from services.common.contracts.history import SessionHistory, SessionQuery, SessionRecord
from services.recorder import migrate as migrations
from services.recorder.errors import DatabaseUnavailableError, ExportError, SchemaNotReadyError
from services.recorder.escape import loaded
from services.recorder.export import CSV_COLUMNS, EXPORT_FORMATS, EXPORT_PAGE, csv_chunks, csv_line, jsonl_chunks
from services.recorder.models import alerts, sessions, summaries, tokens
from services.recorder.rows import alert_from_row, audit_from_row, record_from_row, risk_from_row

_RISK_RANK = case({level: i for i, level in enumerate(RISK_LEVELS)}, value=sessions.c.risk, else_=0)
_STATUS_ORDER = case(
    {"queued": 0, "started": 1, "finished": 2, "cancelled": 3, "failed": 4}, value=sessions.c.status, else_=5
)
_SORT_COLUMNS: dict[str, Any] = {
    "created": sessions.c.created_ns,
    "updated": sessions.c.updated_ns,
    "tokens": sessions.c.tokens,
    "alerts": sessions.c.alerts,
    "peak": sessions.c.peak_rank,
    "risk": _RISK_RANK,
    "status": _STATUS_ORDER,
    "model": func.coalesce(sessions.c.model, ""),
}


def _where(query: SessionQuery) -> list[Any]:
    """The SQL conditions of a session list's filters."""
    where: list[Any] = []
    if query.status is not None:
        where.append(sessions.c.status == query.status)
    if query.risk is not None:
        where.append(sessions.c.risk == query.risk)
    if query.q:
        pattern = query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(sessions.c.prompt.ilike(f"%{pattern}%", escape="\\"))
    if query.model:
        where.append(sessions.c.model == query.model)
    if query.peak is not None and query.peak in RISK_LEVELS:
        where.append(sessions.c.peak_rank >= RISK_LEVELS.index(query.peak))
    if query.since_ns is not None:
        where.append(sessions.c.created_ns >= query.since_ns)
    if query.until_ns is not None:
        where.append(sessions.c.created_ns < query.until_ns)
    return where


class History:
    """Sessions recorded in SQLite or PostgreSQL, read back (``services/recorder/models.py`` has the tables)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # SQLite has one writer at a time; serialising this process's writers avoids busy waits.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        self._checked = False

    @classmethod
    def from_url(cls, url: str) -> History:
        """Reads ``url`` (e.g. ``sqlite:///data/uq.sqlite3``, ``postgresql+psycopg://user@host/db``); connects lazily."""
        return cls(migrations.create(url))

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.dispose)

    def _ready(self) -> None:
        """Check once that the schema is the one this code reads; never change it."""
        if self._checked:
            return
        url = self.engine.url.render_as_string(hide_password=False)
        try:
            current = migrations.current_revision(self.engine)
        except Exception as exc:
            raise DatabaseUnavailableError(url, exc) from exc
        if current != migrations.head_revision():
            raise SchemaNotReadyError(url, current, migrations.head_revision())
        self._checked = True

    def _writing(self) -> AbstractContextManager[object]:
        return self._write_lock if self._write_lock is not None else nullcontext()

    # --- reading --------------------------------------------------------------------------------

    async def list_sessions(self, query: SessionQuery = SessionQuery()) -> tuple[list[SessionRecord], int]:
        """A page of sessions and how many match in all (see ``SessionQuery``)."""
        return await asyncio.to_thread(self._list_sessions, query)

    def _list_sessions(self, query: SessionQuery) -> tuple[list[SessionRecord], int]:
        self._ready()
        where = _where(query)
        column = _SORT_COLUMNS[query.sort]
        key = column.asc() if query.order == "asc" else column.desc()
        # ties keep the newest first, then the id, so that paging is stable
        page = (
            select(sessions)
            .where(*where)
            .order_by(key, sessions.c.created_ns.desc(), sessions.c.session_id)
            .limit(max(query.limit, 0))
            .offset(max(query.offset, 0))
        )
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(sessions).where(*where)).scalar_one()
            rows = conn.execute(page).mappings().all()
            found = _summaries(conn, [r["session_id"] for r in rows])
        return [record_from_row(r, found.get(r["session_id"])) for r in rows], int(total)

    async def get_session(self, session_id: str) -> SessionHistory | None:
        """Everything recorded of one session, or None when there is no such session."""
        return await asyncio.to_thread(self._get_session, session_id)

    def _get_session(self, session_id: str) -> SessionHistory | None:
        self._ready()
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.session_id == session_id)).mappings().first()
            if row is None:
                return None
            found = _summaries(conn, [session_id])
            token_rows = conn.execute(
                select(tokens).where(tokens.c.session_id == session_id).order_by(tokens.c.seq)
            ).mappings()
            audits = [audit_from_row(r) for r in token_rows]
            alert_rows = conn.execute(
                select(alerts).where(alerts.c.session_id == session_id).order_by(alerts.c.seq)
            ).mappings()
            fired: list[AlertEvent] = []
            risks: list[RiskEvent] = []
            for r in alert_rows:
                if r["kind"] == "alert":
                    fired.append(alert_from_row(r))
                else:
                    risks.append(risk_from_row(r))
        return SessionHistory(
            session=record_from_row(row, found.get(session_id)), tokens=audits, alerts=fired, risks=risks
        )

    # --- export ---------------------------------------------------------------------------------

    async def export(
        self,
        *,
        session_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        fmt: str = "jsonl",
    ) -> AsyncIterator[str]:
        """Chunks of text (whole lines) exporting one session, or the sessions created in [since, until).

        ``jsonl``: per session a ``{"type": "session_record", …}`` line (the session record without its
        summary), then its entries as they appeared on the streams, one JSON object per line: audits
        in seq order, then alerts and risk changes in seq order, then the summary.
        ``csv``: a header, then one row per token with its metrics, top-k as JSON, the rules that fired
        on it (``;``-separated) and the session's risk level after it.
        """
        if fmt not in EXPORT_FORMATS:
            raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}", param="format")
        if since_ns is not None and until_ns is not None and until_ns < since_ns:
            raise ExportError("the end of the time range is before its start", param="until")
        if fmt == "csv":
            yield csv_line(CSV_COLUMNS)
        after: tuple[int, str] | None = None
        while True:
            if session_id is not None:
                ids = [session_id]
            else:
                page = await asyncio.to_thread(self._session_ids, since_ns, until_ns, after)
                if not page:
                    return
                after = page[-1]
                ids = [sid for _, sid in page]
            for sid in ids:
                history = await self.get_session(sid)
                if history is not None:
                    for chunk in jsonl_chunks(history) if fmt == "jsonl" else csv_chunks(history):
                        yield chunk
            if session_id is not None:
                return

    def _session_ids(
        self, since_ns: int | None, until_ns: int | None, after: tuple[int, str] | None
    ) -> list[tuple[int, str]]:
        self._ready()
        query = select(sessions.c.created_ns, sessions.c.session_id)
        if since_ns is not None:
            query = query.where(sessions.c.created_ns >= since_ns)
        if until_ns is not None:
            query = query.where(sessions.c.created_ns < until_ns)
        if after is not None:
            created, sid = after
            query = query.where(
                (sessions.c.created_ns > created) | ((sessions.c.created_ns == created) & (sessions.c.session_id > sid))
            )
        query = query.order_by(sessions.c.created_ns, sessions.c.session_id).limit(EXPORT_PAGE)
        with self.engine.connect() as conn:
            return [(int(c), str(s)) for c, s in conn.execute(query)]

    # --- forgetting ---------------------------------------------------------------------------

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session and everything recorded of it; False when there was no such session."""
        return await asyncio.to_thread(self._delete, [session_id]) > 0

    def _delete(self, session_ids: list[str]) -> int:
        self._ready()
        with self._writing(), migrations.write_transaction(self.engine) as conn:
            for table in (tokens, alerts, summaries):
                conn.execute(delete(table).where(table.c.session_id.in_(session_ids)))
            return conn.execute(delete(sessions).where(sessions.c.session_id.in_(session_ids))).rowcount


def _summaries(conn: Connection, session_ids: list[str]) -> dict[str, SummaryEvent]:
    """The latest summary of each of these sessions."""
    if not session_ids:
        return {}
    rows = conn.execute(
        select(summaries).where(summaries.c.session_id.in_(session_ids)).order_by(summaries.c.seq)
    ).mappings()
    return {r["session_id"]: SummaryEvent.model_validate(loaded(dict(r))) for r in rows}

"""Session history: the recorder's store (survives restarts) merged with the live view (not yet stored).

The store is read through the recorder's ``services.recorder.query.History``, imported lazily: without
it the history endpoints answer 503 with the fix, and everything else works. It reads and never
migrates: the recorder owns the schema, and until it has created or migrated it the history endpoints
answer 503 saying so.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from services.common.contracts import (
    AlertEvent,
    RiskEvent,
    ScoresEvent,
    SessionHistory,
    SessionRecord,
    SessionStatus,
    SummaryEvent,
)
from services.common.contracts.events import RISK_LEVELS, STATUS_SEQ
from services.common.contracts.history import SessionQuery
from services.common.errors import UQError
from services.gateway import messages
from services.gateway.errors import NotFoundError, UnavailableError
from services.gateway.live import LiveState, SessionView
from services.gateway.messages import MessageKey
from services.gateway.models import SessionDetail, SessionList, StatusResponse, TokenMessage

log = logging.getLogger(__name__)


class HistoryReader(Protocol):
    """What the gateway uses of ``services.recorder.query.History``."""

    async def list_sessions(self, query: SessionQuery = SessionQuery()) -> tuple[list[SessionRecord], int]: ...

    async def get_session(self, session_id: str) -> SessionHistory | None: ...

    async def delete_session(self, session_id: str) -> bool: ...

    def export(
        self,
        *,
        session_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        fmt: str = "jsonl",
    ) -> AsyncIterator[str]: ...

    async def close(self) -> None: ...


def open_history(url: str) -> HistoryReader | None:
    """The recorder's history on ``url``, read-only, or None (logged) when the recorder package is not installed."""
    try:
        from services.recorder.query import History
    except ImportError as exc:
        log.warning(
            "session history unavailable: services.recorder.query cannot be imported", extra={"error": str(exc)}
        )
        return None
    store: HistoryReader = History.from_url(url)
    return store


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """The store's own errors (database down, schema not created by the recorder yet) as 503s."""
    try:
        yield
    except UQError as exc:
        raise UnavailableError(f"session history: {exc}") from exc


_GROUP = {"session": (0, 0), "token": (1, 0), "alert": (1, 1), "risk": (1, 2), "scores": (1, 3), "done": (2, 0)}


def merge(
    stored: list[tuple[MessageKey, dict[str, Any]]], live: list[tuple[MessageKey, str]], after_seq: int = -1
) -> list[tuple[MessageKey, str]]:
    """Stored and live messages deduped on (type, seq), tokens after ``after_seq``, in replay order.

    Live copies win (they are the same entries, seen earlier). Order: the latest lifecycle message,
    then tokens by seq with each alert and risk change after the token that caused it and the latest
    live scores after the last token they include, ``done`` last.
    """
    by_key: dict[MessageKey, str] = {key: messages.dumps(msg) for key, msg in stored}
    token_seq: dict[MessageKey, int] = {key: int(msg.get("token_seq", 0)) for key, msg in stored}
    for key, text in live:
        by_key[key] = text
        if key[0] in ("alert", "risk", "scores"):
            token_seq[key] = int(json.loads(text).get("token_seq", 0))
    for kind in ("session", "scores"):  # one lifecycle message (the latest status), the latest scores
        for k in sorted(k for k in by_key if k[0] == kind)[:-1]:
            del by_key[k]

    def order(key: MessageKey) -> tuple[int, int, int, int]:
        group, sub = _GROUP.get(key[0], (1, 3))
        position = key[1] if key[0] == "token" else token_seq.get(key, 0)
        return group, position, sub, key[1]

    keys = sorted((k for k in by_key if not (k[0] == "token" and k[1] <= after_seq)), key=order)
    return [(k, by_key[k]) for k in keys]


class HistoryService:
    """Sessions past and present, for REST and for WebSocket replay."""

    def __init__(self, store: HistoryReader | None, live: LiveState) -> None:
        self.store = store
        self.live = live

    def _need_store(self) -> HistoryReader:
        if self.store is None:
            raise UnavailableError(
                "session history needs the recorder's store (services.recorder): install it and point "
                "UQ_DATABASE_URL at the recorder's database"
            )
        return self.store

    async def list_sessions(self, query: SessionQuery = SessionQuery()) -> SessionList:
        with _store_errors():
            items, total = await self._need_store().list_sessions(query)
        return SessionList(items=items, total=total)

    async def stored(self, session_id: str) -> SessionHistory | None:
        if self.store is None:
            return None
        with _store_errors():
            return await self.store.get_session(session_id)

    async def messages(self, session_id: str, after_seq: int = -1) -> list[tuple[MessageKey, str]] | None:
        """Replay of one session (store + live buffer); None when neither knows it."""
        history = await self._stored_or_live(session_id)
        view = self.live.view(session_id)
        if history is None and view is None:
            return None
        stored = messages.from_history(history) if history is not None else []
        live = list(view.messages) if view is not None else []
        return merge(stored, live, after_seq)

    async def _stored_or_live(self, session_id: str) -> SessionHistory | None:
        """The stored session; when the store cannot answer (its database is down, or the recorder has
        not created its schema yet), None for a session the live buffer knows: it is served from there."""
        try:
            return await self.stored(session_id)
        except UnavailableError as exc:
            if self.live.view(session_id) is None:
                raise
            log.warning(
                "session served from the live buffer only", extra={"session_id": session_id, "error": exc.message}
            )
            return None

    async def detail(self, session_id: str) -> SessionDetail:
        history = await self._stored_or_live(session_id)
        view = self.live.view(session_id)
        replay = await self.messages(session_id)
        if replay is None:
            raise NotFoundError(f"no session {session_id!r}", param="session_id")
        tokens, alerts, risks = [], [], []
        summary: dict[str, Any] | None = None
        for key, text in replay:
            if key[0] == "token":
                tokens.append(TokenMessage.model_validate_json(text))
            elif key[0] == "alert":
                alerts.append(AlertEvent.model_validate_json(text))
            elif key[0] == "risk":
                risks.append(RiskEvent.model_validate_json(text))
            elif key[0] == "done":
                summary = json.loads(text).get("summary")
        if view is not None and view.summary is not None:
            summary = view.summary
        record = _record(history, view, len(tokens), len(alerts))
        live_scores = view.scores if view is not None and summary is None else None
        return SessionDetail(
            session=record,
            tokens=tokens,
            alerts=alerts,
            risks=risks,
            summary=SummaryEvent.model_validate(summary) if summary is not None else None,
            live_scores=ScoresEvent.model_validate(live_scores) if live_scores is not None else None,
        )

    async def status(self, session_id: str) -> StatusResponse:
        view = self.live.view(session_id)
        if view is not None:
            return StatusResponse(
                session_id=session_id,
                status=view.status,
                reason=view.reason,
                tokens=view.tokens,
                risk=view.risk,
                source="live",
            )
        history = await self.stored(session_id)
        if history is None:
            raise NotFoundError(f"no session {session_id!r}", param="session_id")
        r = history.session
        return StatusResponse(
            session_id=session_id, status=r.status, reason=r.reason, tokens=r.tokens, risk=r.risk, source="history"
        )

    async def known_status(self, session_id: str) -> str | None:
        try:
            return (await self.status(session_id)).status
        except NotFoundError:
            return None

    async def delete(self, session_id: str) -> None:
        with _store_errors():
            deleted = await self._need_store().delete_session(session_id)
        if not deleted:
            raise NotFoundError(f"no session {session_id!r}", param="session_id")
        self.live.forget(session_id)

    def export(
        self, *, session_id: str | None, since_ns: int | None, until_ns: int | None, fmt: str
    ) -> AsyncIterator[str]:
        return self._need_store().export(session_id=session_id, since_ns=since_ns, until_ns=until_ns, fmt=fmt)


def _record(history: SessionHistory | None, view: SessionView | None, tokens: int, alerts: int) -> SessionRecord:
    if history is not None:
        record = history.session
        if view is None:
            return record
        newer = STATUS_SEQ.get(view.status, 0) >= STATUS_SEQ[record.status]
        status: SessionStatus = view.status if newer else record.status  # type: ignore[assignment]
        # The live view can be ahead of the recorder (it ended a moment ago): its reason goes with its status.
        reason = record.reason
        if view.ended and view.status == status and (record.status != status or reason is None):
            reason = view.reason
        return record.model_copy(
            update={
                "status": status,
                "reason": reason,
                "tokens": max(tokens, record.tokens),
                "alerts": max(alerts, record.alerts),
                "peak_risk": max(record.peak_risk, view.peak_risk, key=RISK_LEVELS.index),
            }
        )
    assert view is not None
    return SessionRecord(
        session_id=view.session_id,
        status=view.status,
        model=view.model,
        provider=view.provider,
        prompt=view.prompt,
        reason=view.reason,
        created_ns=0,
        updated_ns=0,
        tokens=tokens,
        alerts=alerts,
        risk=view.risk,
        peak_risk=view.peak_risk,
    )

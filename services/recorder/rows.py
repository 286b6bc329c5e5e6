"""How stream entries become rows of the audit trail, and rows become entries again.

Pure functions and SQL text, no connections: ``store.py`` runs them.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from services.common.contracts import (
    AlertEvent,
    AuditEvent,
    Event,
    RiskEvent,
    SessionEvent,
    SummaryEvent,
    TopKAlternative,
)
from services.common.contracts.history import SessionRecord

METRICS = ("prob", "surprisal", "entropy", "margin", "rank", "hbar_s", "fisher_trace", "varentropy", "coverage")

TOKEN_COLUMNS = (
    "session_id",
    "seq",
    "ts_ns",
    "token_ts_ns",
    "token_id",
    "text",
    "distribution",
    "model",
    *METRICS,
    "exact",
    "top_k",
)
_PG_EXTRACT = {
    "session_id": "e->>'session_id'",
    "seq": "(e->>'seq')::int",
    "ts_ns": "(e->>'ts_ns')::bigint",
    "token_ts_ns": "(e->>'token_ts_ns')::bigint",
    "token_id": "(e->>'token_id')::int",
    "text": "e->>'text'",
    "distribution": "e->>'distribution'",
    "model": "e->>'model'",
    **{name: f"(e->'metrics'->>'{name}')::float8" for name in METRICS if name != "rank"},
    "rank": "(e->'metrics'->>'rank')::int",
    "exact": "(e->'metrics'->>'exact')::bool",
    "top_k": "e->'top_k'",
}
# jsonb keeps JSON numbers as exact decimals and float8 input is correctly rounded, so every float
# reads back bit for bit (tests/recorder check equality).
PG_INSERT_TOKENS = (
    f"WITH new AS (INSERT INTO tokens ({', '.join(TOKEN_COLUMNS)}) "
    f"SELECT {', '.join(_PG_EXTRACT[c] for c in TOKEN_COLUMNS)} "
    "FROM jsonb_array_elements(%s::jsonb) AS a(e) "
    "ON CONFLICT DO NOTHING RETURNING session_id) "
    "SELECT session_id, count(*) FROM new GROUP BY session_id"
)
SQLITE_INSERT_TOKENS = (
    f"INSERT INTO tokens ({', '.join(TOKEN_COLUMNS)}) VALUES ({', '.join('?' for _ in TOKEN_COLUMNS)}) "
    "ON CONFLICT DO NOTHING"
)


def nul_to_replacement(text: str | None) -> str | None:
    return None if text is None else text.replace("\x00", "\ufffd")


def audit_without_nul(e: AuditEvent) -> AuditEvent:
    if "\x00" in e.text or any("\x00" in a.text for a in e.top_k):
        top_k = [a.model_copy(update={"text": nul_to_replacement(a.text)}) for a in e.top_k]
        return e.model_copy(update={"text": nul_to_replacement(e.text), "top_k": top_k})
    return e


def without_nul(e: Event) -> Event:
    """PostgreSQL text cannot hold U+0000; the store keeps it as U+FFFD, on both databases alike."""
    if isinstance(e, AuditEvent):
        return audit_without_nul(e)
    if isinstance(e, AlertEvent):
        if "\x00" in e.message or "\x00" in e.token_text:
            return e.model_copy(
                update={"message": nul_to_replacement(e.message), "token_text": nul_to_replacement(e.token_text)}
            )
    elif isinstance(e, RiskEvent):
        if "\x00" in e.reason:
            return e.model_copy(update={"reason": nul_to_replacement(e.reason)})
    elif isinstance(e, SessionEvent) and "\x00" in (e.prompt or "") + (e.reason or ""):
        return e.model_copy(update={"prompt": nul_to_replacement(e.prompt), "reason": nul_to_replacement(e.reason)})
    return e


TOP_K_JSON = TypeAdapter(list[TopKAlternative])
AUDITS_JSON = TypeAdapter(list[AuditEvent])


def token_row(e: AuditEvent) -> tuple[Any, ...]:
    """The ``tokens`` row of an audit, in ``TOKEN_COLUMNS`` order; top-k as JSON text."""
    top_k = TOP_K_JSON.dump_json(e.top_k).decode()
    if "\x00" in e.text or "\\u0000" in top_k:
        e = audit_without_nul(e)
        top_k = TOP_K_JSON.dump_json(e.top_k).decode()
    m = e.metrics
    return (
        e.session_id,
        e.seq,
        e.ts_ns,
        e.token_ts_ns,
        e.token_id,
        e.text,
        e.distribution,
        e.model,
        m.prob,
        m.surprisal,
        m.entropy,
        m.margin,
        m.rank,
        m.hbar_s,
        m.fisher_trace,
        m.varentropy,
        m.coverage,
        m.exact,
        top_k,
    )


def alert_row(e: AlertEvent | RiskEvent) -> dict[str, Any]:
    row: dict[str, Any] = {
        "session_id": e.session_id,
        "seq": e.seq,
        "ts_ns": e.ts_ns,
        "token_seq": e.token_seq,
        "rule": None,
        "severity": None,
        "message": None,
        "token_text": None,
        "values": None,
        "level": None,
        "previous": None,
        "reason": None,
    }
    if isinstance(e, AlertEvent):
        row.update(
            kind="alert",
            rule=e.rule,
            severity=e.severity,
            message=e.message,
            token_text=e.token_text,
            values=dict(e.values),
        )
    else:
        row.update(kind="risk", level=e.level, previous=e.previous, reason=e.reason)
    return row


def summary_row(e: SummaryEvent) -> dict[str, Any]:
    return e.model_dump(exclude={"schema_version", "type"})


def audit_from_row(r: Any) -> AuditEvent:
    return AuditEvent.model_validate(
        {
            "session_id": r["session_id"],
            "seq": r["seq"],
            "ts_ns": r["ts_ns"],
            "token_ts_ns": r["token_ts_ns"],
            "token_id": r["token_id"],
            "text": r["text"],
            "distribution": r["distribution"],
            "model": r["model"],
            "metrics": {name: r[name] for name in (*METRICS, "exact")},
            "top_k": r["top_k"],
        }
    )


def alert_from_row(r: Any) -> AlertEvent:
    return AlertEvent(
        session_id=r["session_id"],
        seq=r["seq"],
        ts_ns=r["ts_ns"],
        rule=r["rule"],
        severity=r["severity"],
        message=r["message"],
        token_seq=r["token_seq"],
        token_text=r["token_text"],
        values=r["values"] or {},
    )


def risk_from_row(r: Any) -> RiskEvent:
    return RiskEvent(
        session_id=r["session_id"],
        seq=r["seq"],
        ts_ns=r["ts_ns"],
        level=r["level"],
        previous=r["previous"],
        reason=r["reason"],
        token_seq=r["token_seq"],
    )


def record_from_row(r: Any, summary: SummaryEvent | None) -> SessionRecord:
    return SessionRecord(
        session_id=r["session_id"],
        status=r["status"],
        model=r["model"],
        provider=r["provider"],
        prompt=r["prompt"],
        reason=r["reason"],
        created_ns=r["created_ns"],
        updated_ns=r["updated_ns"],
        tokens=r["tokens"],
        alerts=r["alerts"],
        risk=r["risk"],
        summary=summary,
    )

"""How stream entries become rows of the audit trail, and rows become entries again.

Pure functions and SQL text, no connections: ``store.py`` runs them.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from services.common.contracts import (
    RISK_LEVELS,
    AlertEvent,
    AuditEvent,
    Event,
    RiskEvent,
    SummaryEvent,
    TopKAlternative,
)
from services.common.contracts.history import SessionRecord
from services.recorder.escape import escaped, load_optional, load_text, loaded, needs_escape, store_text

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


def as_stored(e: Event) -> Event:
    """The entry as the store writes it: U+0000 and U+0010 escaped (see ``escape.py``), else itself."""
    return escaped(e) if needs_escape(e.model_dump_json()) else e


TOP_K_JSON = TypeAdapter(list[TopKAlternative])
AUDITS_JSON = TypeAdapter(list[AuditEvent])


def token_row(e: AuditEvent) -> tuple[Any, ...]:
    """The ``tokens`` row of an audit, in ``TOKEN_COLUMNS`` order; top-k as JSON text."""
    top_k = TOP_K_JSON.dump_json(e.top_k).decode()
    if needs_escape(top_k) or store_text(e.text) != e.text or store_text(e.model) != e.model:
        e = escaped(e)
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
            detail={"rules": list(e.rules), "findings": [f.model_dump() for f in e.findings]},
        )
    else:
        row.update(
            kind="risk",
            level=e.level,
            previous=e.previous,
            reason=e.reason,
            detail={"evidence": e.evidence, "p_wrong": e.p_wrong, "profile": e.profile},
        )
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
            "text": load_text(r["text"]),
            "distribution": r["distribution"],
            "model": load_text(r["model"]),
            "metrics": {name: r[name] for name in (*METRICS, "exact")},
            "top_k": loaded(r["top_k"]),
        }
    )


def alert_from_row(r: Any) -> AlertEvent:
    return AlertEvent(
        session_id=r["session_id"],
        seq=r["seq"],
        ts_ns=r["ts_ns"],
        rule=load_text(r["rule"]),
        severity=r["severity"],
        message=load_text(r["message"]),
        token_seq=r["token_seq"],
        token_text=load_text(r["token_text"]),
        values=loaded(r["values"] or {}),
        **_detail(r),
    )


def risk_from_row(r: Any) -> RiskEvent:
    return RiskEvent(
        session_id=r["session_id"],
        seq=r["seq"],
        ts_ns=r["ts_ns"],
        level=r["level"],
        previous=r["previous"],
        reason=load_text(r["reason"]),
        token_seq=r["token_seq"],
        **_detail(r),
    )


def _detail(r: Any) -> dict[str, Any]:
    """The ``detail`` column's fields (absent in rows from before revision 0004)."""
    try:
        detail = r["detail"]
    except KeyError:
        return {}
    return dict(loaded(detail)) if detail else {}


def record_from_row(r: Any, summary: SummaryEvent | None) -> SessionRecord:
    return SessionRecord(
        session_id=r["session_id"],
        status=r["status"],
        model=load_optional(r["model"]),
        provider=load_optional(r["provider"]),
        prompt=load_optional(r["prompt"]),
        reason=load_optional(r["reason"]),
        created_ns=r["created_ns"],
        updated_ns=r["updated_ns"],
        tokens=r["tokens"],
        alerts=r["alerts"],
        risk=r["risk"],
        peak_risk=RISK_LEVELS[min(max(int(r["peak_rank"] or 0), 0), len(RISK_LEVELS) - 1)],
        summary=summary,
    )

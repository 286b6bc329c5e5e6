"""Small builders of stream entries for gateway tests."""

from __future__ import annotations

from services.common.contracts import (
    AlertEvent,
    AuditEvent,
    Metrics,
    RiskEvent,
    SessionEvent,
    SummaryEvent,
    TopKAlternative,
    now_ns,
)


def audit(sid: str, seq: int, prob: float = 0.5, pad: int = 0, **extra: object) -> AuditEvent:
    return AuditEvent(
        session_id=sid,
        seq=seq,
        text=f"t{seq}" + "x" * pad,
        token_id=seq,
        distribution="top_k",
        metrics=Metrics(prob=prob, surprisal=1.0, entropy=1.5, exact=False, coverage=0.9),
        top_k=[TopKAlternative(token_id=seq, text=f"t{seq}", logprob=-0.69)],
        model="m",
        token_ts_ns=extra.pop("token_ts_ns", now_ns()),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def lifecycle(sid: str, status: str, **extra: object) -> SessionEvent:
    seq = {"queued": 0, "started": 1}.get(status, 2)
    return SessionEvent(session_id=sid, seq=seq, status=status, model="m", **extra)  # type: ignore[arg-type]


def alert(sid: str, seq: int, token_seq: int) -> AlertEvent:
    return AlertEvent(
        session_id=sid,
        seq=seq,
        rule="LOW_CONFIDENCE",
        severity="warning",
        message="p < 0.3",
        token_seq=token_seq,
        token_text=f"t{token_seq}",
        values={"prob": 0.1},
    )


def risk(sid: str, seq: int, token_seq: int, level: str = "warning") -> RiskEvent:
    return RiskEvent(
        session_id=sid,
        seq=seq,
        level=level,
        previous="safe",
        reason="alerts",
        token_seq=token_seq,  # type: ignore[arg-type]
    )


def summary(sid: str, seq: int, tokens: int) -> SummaryEvent:
    return SummaryEvent(session_id=sid, seq=seq, tokens=tokens, final_risk="warning", status="finished")

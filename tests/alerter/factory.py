"""Audits and scripted sessions shared by the alerter tests."""

from __future__ import annotations

from typing import Any

from services.alerter.settings import AlerterSettings
from services.common.contracts import AuditEvent, Metrics


def audit(
    seq: int,
    text: str = " x",
    *,
    prob: float | None = 0.9,
    hbar_s: float | None = 0.5,
    session_id: str = "s1",
    **metrics: Any,
) -> AuditEvent:
    surprisal = metrics.pop("surprisal", None)
    if surprisal is None and prob is not None:
        import math

        surprisal = -math.log2(prob) if prob > 0 else None
    values: dict[str, Any] = {"prob": prob, "hbar_s": hbar_s, "entropy": hbar_s, "surprisal": surprisal, "exact": True}
    values.update(metrics)
    return AuditEvent(
        session_id=session_id,
        seq=seq,
        text=text,
        distribution="full",
        metrics=Metrics(**values),
        model="test-model",
        token_ts_ns=1,
    )


def scripted(session_id: str = "s1") -> list[AuditEvent]:
    """A 24-token session: calm, a burst of trouble at #10–#13, calm again, a quantum token at #20."""
    out = []
    for seq in range(24):
        text, prob, h = f" w{seq}", 0.9, 0.5  # distinct words: the text does not loop
        if seq == 7:
            text, prob = " Paris", 0.12
        if 10 <= seq <= 13:
            prob, h = 0.2, 2.8
        if seq == 20:
            text, h = " quantum", 3.2
        out.append(audit(seq, text, prob=prob, hbar_s=h, session_id=session_id))
    return out


def settings(**overrides: Any) -> AlerterSettings:
    """Alerter settings; live scores off unless asked for, so the scripted outputs stay few and exact
    (tests/alerter/test_calibrated_risk.py covers them)."""
    return AlerterSettings(**{"scores_every": 0, **overrides})


def view(event: Any) -> dict[str, Any]:
    """An output without its publish time, for comparing runs."""
    data: dict[str, Any] = event.model_dump()
    data.pop("ts_ns")
    return data

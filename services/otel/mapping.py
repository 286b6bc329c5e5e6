"""What each stream entry becomes in OpenTelemetry, following the GenAI semantic conventions.

- A session is one **generation span** (``text_completion <model>``, kind CLIENT) from its first entry
  to its terminal one, with ``gen_ai.*`` request/response/usage attributes and ``uq.*`` outcomes.
- The summary's scores are ``gen_ai.evaluation.result`` **events**, one per score
  (``gen_ai.evaluation.name`` ``uq.p_wrong``, ``uq.hbar_s.mean`` …), parented to the generation span.
- Alerts (``uq.alert``), risk changes (``uq.risk.change``) and, optionally, every audited token
  (``uq.token``) are events on the same span.

The span's trace and span ids are derived from the session id (:func:`span_ids`), so events that
arrive before the span is written, after a restart, or from another replica still land on it.
Pure functions: the SDK objects are made in ``services/otel/service.py``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from services.common.contracts import (
    RISK_LEVELS,
    AlertEvent,
    AuditEvent,
    RiskEvent,
    SessionEvent,
    SummaryEvent,
)

Attributes = dict[str, Any]
OPERATION = "text_completion"
EVALUATION_EVENT = "gen_ai.evaluation.result"


def span_ids(session_id: str) -> tuple[int, int]:
    """(trace id, span id) of a session's generation span: 128 and 64 bits, never zero."""
    digest = hashlib.sha256(f"uq-session:{session_id}".encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id


def span_name(model: str | None) -> str:
    return f"{OPERATION} {model}" if model else OPERATION


def _clean(attrs: Attributes) -> Attributes:
    """OTLP attribute values are scalars or homogeneous lists; None means "leave it out"."""
    return {k: v for k, v in attrs.items() if v is not None}


def span_attributes(start: SessionEvent | None, end: SessionEvent, capture_content: bool) -> Attributes:
    """The generation span's attributes from the session's first and terminal entries."""
    model = end.model or (start.model if start else None)
    provider = end.provider or (start.provider if start else None)
    prompt = start.prompt if start else None
    attrs: Attributes = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.response.id": end.session_id,
        "gen_ai.response.finish_reasons": [end.reason] if end.reason else None,
        "gen_ai.usage.output_tokens": end.tokens,
        "gen_ai.usage.input_tokens": end.prompt_tokens,
        "uq.session_id": end.session_id,
        "uq.status": end.status,
    }
    if end.status == "failed":
        attrs["error.type"] = end.reason or "failed"
    if capture_content and prompt is not None:
        attrs["gen_ai.input.messages"] = json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": prompt}]}], ensure_ascii=False
        )
    return _clean(attrs)


def evaluation_results(summary: SummaryEvent) -> list[Attributes]:
    """One ``gen_ai.evaluation.result`` event's attributes per score of the summary."""
    rid = summary.session_id
    out: list[Attributes] = []

    def add(name: str, value: float | None, label: str | None = None, explanation: str | None = None) -> None:
        if value is None and label is None:
            return
        out.append(
            _clean(
                {
                    "gen_ai.evaluation.name": name,
                    "gen_ai.evaluation.score.value": value,
                    "gen_ai.evaluation.score.label": label,
                    "gen_ai.evaluation.explanation": explanation,
                    "gen_ai.response.id": rid,
                }
            )
        )

    calibrated = f"calibrated on profile {summary.profile}" if summary.profile else None
    add("uq.p_wrong", summary.p_wrong, summary.final_risk, calibrated or "probability that the answer is wrong")
    add(
        "uq.risk.peak",
        float(RISK_LEVELS.index(summary.peak_risk)),
        summary.peak_risk,
        "highest risk level reached: 0 safe, 1 warning, 2 critical, 3 emergency",
    )
    add("uq.risk.final", float(RISK_LEVELS.index(summary.final_risk)), summary.final_risk, "risk level at the end")
    add("uq.hbar_s.mean", summary.mean_hbar_s, None, "mean semantic uncertainty, bits; higher = more uncertain")
    add("uq.hbar_s.max", summary.max_hbar_s, None, "largest semantic uncertainty, bits")
    add("uq.entropy.mean", summary.mean_entropy, None, "mean next-token entropy, bits")
    add("uq.perplexity", summary.perplexity, None, "2^(mean surprisal); higher = the text surprised the model more")
    add("uq.low_confidence_share", summary.low_confidence_share, None, "share of tokens below the probability floor")
    if summary.answer_scores is not None:
        for key, value in summary.answer_scores.model_dump().items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key != "tokens":
                add(f"uq.answer.{key}", float(value), None, "sequence score of the answer span")
    if summary.verification is not None:
        v = summary.verification
        add(
            "uq.verification.consistency",
            v.consistency,
            None,
            "agreement of the sampled answers; higher = more certain",
        )
        add("uq.verification.exact", v.exact, None, "share of samples equal to the answer")
    return out


def token_attributes(audit: AuditEvent, capture_content: bool) -> Attributes:
    m = audit.metrics
    return _clean(
        {
            "gen_ai.response.id": audit.session_id,
            "uq.token.seq": audit.seq,
            "uq.token.text": audit.text if capture_content else None,
            "uq.token.prob": m.prob,
            "uq.token.surprisal": m.surprisal,
            "uq.token.entropy": m.entropy,
            "uq.token.hbar_s": m.hbar_s,
            "uq.token.rank": m.rank,
            "uq.token.margin": m.margin,
            "uq.token.exact": m.exact,
        }
    )


def alert_attributes(alert: AlertEvent, capture_content: bool) -> Attributes:
    values = {f"uq.alert.value.{k}": float(v) for k, v in alert.values.items() if v is not None}
    return _clean(
        {
            "gen_ai.response.id": alert.session_id,
            "uq.alert.rule": alert.rule,
            "uq.alert.rules": list(alert.rules) or None,
            "uq.alert.severity": alert.severity,
            "uq.alert.message": alert.message,
            "uq.token.seq": alert.token_seq,
            "uq.token.text": alert.token_text if capture_content else None,
            **values,
        }
    )


def risk_attributes(risk: RiskEvent) -> Attributes:
    return _clean(
        {
            "gen_ai.response.id": risk.session_id,
            "uq.risk.level": risk.level,
            "uq.risk.previous": risk.previous,
            "uq.risk.reason": risk.reason,
            "uq.risk.p_wrong": risk.p_wrong,
            "uq.token.seq": risk.token_seq,
        }
    )

"""How the alerter persists one session's state: a named, versioned JSON document, one Redis key.

``<prefix>alerter:state:<group>:<session_id>`` holds a :class:`StoredState` (pydantic, every field
named, ``extra="forbid"``), written by :func:`dump` with every batch that touches the session and read
back by :func:`load` after a restart. Fields at their default are left out, so a quiet session's
state stays small; a finished session keeps only ``{"version": 2, "done": true}``.

Versions
- **2** (this one): named fields throughout.
- **1**: positional lists (``"cd": {rule: [last_emit, last_fire, span, suppressed, rank]}``, ``"end":
  [status, tokens, deadline, verification?]``, the stats as bare lists, buffered audits as JSON
  strings). :func:`load` migrates it (:func:`migrate_v1`), so an alerter upgraded mid-session goes
  on exactly where the old one stopped. A version it does not know is an error (the caller starts
  the session afresh and logs it).

To change the format: add version 3 here, keep a ``migrate_v2`` that turns a version-2 document into
a version-3 one, and a test that loads a version-2 document as today's code writes it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from services.alerter.risk import RiskState
from services.alerter.scores import SequenceStats, SpanStats
from services.alerter.session import Cooldown, Ending, SessionState, Stats

__all__ = ["STATE_VERSION", "Cooldown", "StoredState", "dump", "load", "migrate_v1"]
from services.common.answer import AnswerSpan
from services.common.contracts import AuditEvent, RiskLevel, SessionStatus, Verification

STATE_VERSION = 2


class _Stored(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoredStats(_Stored):
    """Running sums for the summary (:class:`~services.alerter.session.Stats`)."""

    tokens: int = 0
    hbar_n: int = 0
    hbar_sum: float = 0.0
    hbar_max: float | None = None
    entropy_n: int = 0
    entropy_sum: float = 0.0
    surprisal_n: int = 0
    surprisal_sum: float = 0.0
    prob_n: int = 0
    low_n: int = 0


class StoredSpan(_Stored):
    """One span's running sums and extremes (:class:`~services.alerter.scores.SpanStats`)."""

    tokens: int = 0
    nll_n: int = 0
    nll_sum: float = 0.0
    nll_max: float | None = None
    nll_first: float | None = None
    entropy_n: int = 0
    entropy_sum: float = 0.0
    entropy_max: float | None = None
    hbar_n: int = 0
    hbar_sum: float = 0.0
    hbar_max: float | None = None
    margin_min: float | None = None
    entropy_first: float | None = None
    margin_first: float | None = None
    probe_n: int = 0
    probe_sum: float = 0.0


class StoredSequence(_Stored):
    """Both spans of the sequence scores and where the answer is (:class:`~services.alerter.scores.SequenceStats`)."""

    all: StoredSpan = StoredSpan()
    answer: StoredSpan = StoredSpan()
    answer_seen_text: bool = False
    answer_closed: bool = False


class StoredFiring(_Stored):
    """A token within the risk window on which rules fired."""

    token: int
    weight: int
    rules: str  # "RULE_A,RULE_B"


class StoredEvidence(_Stored):
    """One piece of calibrated evidence: the level it set, why, when (tokens), and its P(wrong)."""

    level: RiskLevel
    sentence: str
    at: int
    p_wrong: float | None = None


class StoredRisk(_Stored):
    """The risk level and its window (:class:`~services.alerter.risk.RiskState`)."""

    level: RiskLevel = "safe"
    score: int = 0
    tokens: int = 0
    recent: list[StoredFiring] = []
    peak: RiskLevel = "safe"
    evidence: dict[str, StoredEvidence] = {}
    loop_at: int = 0


class StoredCooldown(_Stored):
    """One rule's cooldown (:class:`~services.alerter.session.Cooldown`)."""

    last_alert: int
    last_firing: int
    span: int
    suppressed: int = 0
    rank: int = 0


class StoredBuffered(_Stored):
    """An audit waiting in the reorder buffer, and when (wall-clock seconds) it arrived."""

    arrived_at: float
    audit: AuditEvent


class StoredEnding(_Stored):
    """The session's terminal lifecycle entry (:class:`~services.alerter.session.Ending`)."""

    status: SessionStatus
    tokens: int | None
    deadline: float
    verification: Verification | None = None


class StoredState(_Stored):
    """What the alerter remembers about one session, as persisted."""

    version: Literal[2]
    done: bool = False  # summarised: the rest is left out, late audits are ignored
    next_seq: int = 0
    out_seq: int = 0
    buffer: list[StoredBuffered] = []
    rule_state: dict[str, dict[str, Any]] = {}
    cooldown: dict[str, StoredCooldown] = {}
    fired: dict[str, int] = {}
    sent: dict[str, int] = {}
    stats: StoredStats = StoredStats()
    sequence: StoredSequence = StoredSequence()
    model: str | None = None
    risk: StoredRisk = StoredRisk()
    skipped: int = 0
    late: int = 0
    ending: StoredEnding | None = None
    last_seen: float = 0.0


def dump(st: SessionState) -> bytes:
    """The persisted form of ``st`` (fields at their default left out)."""
    if st.done:
        stored = StoredState(version=STATE_VERSION, done=True)
    else:
        risk = st.risk
        stored = StoredState(
            version=STATE_VERSION,
            next_seq=st.next_seq,
            out_seq=st.out_seq,
            buffer=[StoredBuffered(arrived_at=at, audit=a) for _, (at, a) in sorted(st.buffer.items())],
            rule_state={k: v for k, v in st.rule_state.items() if v},
            cooldown={
                rule: StoredCooldown.model_validate(cd, from_attributes=True) for rule, cd in st.cooldown.items()
            },
            fired=st.fired,
            sent=st.sent,
            stats=StoredStats.model_validate(st.stats, from_attributes=True),
            sequence=StoredSequence(
                all=StoredSpan.model_validate(st.sequence.all, from_attributes=True),
                answer=StoredSpan.model_validate(st.sequence.answer, from_attributes=True),
                answer_seen_text=st.sequence.span.seen_text,
                answer_closed=st.sequence.span.closed,
            ),
            model=st.model,
            risk=StoredRisk(
                level=risk.level,
                score=risk.score,
                tokens=risk.tokens,
                recent=[StoredFiring(token=t, weight=w, rules=r) for t, w, r in risk.recent],
                peak=risk.peak,
                evidence={
                    kind: StoredEvidence(level=level, sentence=sentence, at=at, p_wrong=p_wrong)
                    for kind, (level, sentence, at, p_wrong) in risk.evidence.items()
                },
                loop_at=risk.loop_at,
            ),
            skipped=st.skipped,
            late=st.late,
            ending=StoredEnding.model_validate(st.ending, from_attributes=True) if st.ending else None,
            last_seen=st.last_seen,
        )
    return stored.model_dump_json(exclude_defaults=True).encode()


def load(session_id: str, data: bytes | str) -> SessionState:
    """The session's state from its persisted form, of this version or migrated from an older one.

    Raises ``ValueError`` (pydantic's ``ValidationError`` is one) for a document it cannot read.
    """
    raw = json.loads(data)
    if not isinstance(raw, dict):
        raise ValueError(f"alerter state is not a JSON object: {type(raw).__name__}")
    if raw.get("v") == 1 and "version" not in raw:
        raw = migrate_v1(raw)
    if raw.get("version") != STATE_VERSION:
        raise ValueError(f"unknown alerter state version {raw.get('version', raw.get('v'))!r}")
    stored = StoredState.model_validate(raw)
    if stored.done:
        return SessionState(session_id, done=True)
    risk, seq = stored.risk, stored.sequence
    return SessionState(
        session_id,
        next_seq=stored.next_seq,
        out_seq=stored.out_seq,
        buffer={b.audit.seq: (b.arrived_at, b.audit) for b in stored.buffer},
        rule_state=stored.rule_state,
        cooldown={rule: Cooldown(**cd.model_dump()) for rule, cd in stored.cooldown.items()},
        fired=stored.fired,
        sent=stored.sent,
        stats=Stats(**stored.stats.model_dump()),
        sequence=SequenceStats(
            SpanStats(**seq.all.model_dump()),
            SpanStats(**seq.answer.model_dump()),
            AnswerSpan(seq.answer_seen_text, seq.answer_closed),
        ),
        model=stored.model,
        risk=RiskState(
            risk.level,
            risk.score,
            risk.tokens,
            [[f.token, f.weight, f.rules] for f in risk.recent],
            risk.peak,
            {kind: [e.level, e.sentence, e.at, e.p_wrong] for kind, e in risk.evidence.items()},
            risk.loop_at,
        ),
        skipped=stored.skipped,
        late=stored.late,
        ending=_ending(stored.ending),
        last_seen=stored.last_seen,
    )


def _ending(e: StoredEnding | None) -> Ending | None:
    return Ending(e.status, e.tokens, e.deadline, e.verification) if e is not None else None


# --- version 1 --------------------------------------------------------------------------------------

# The order version 1 wrote its lists in (services/alerter/session.py and scores.py until version 2).
_V1_STATS = (
    "tokens", "hbar_n", "hbar_sum", "hbar_max", "entropy_n", "entropy_sum", "surprisal_n", "surprisal_sum", "prob_n",
    "low_n",
)  # fmt: skip
_V1_SPAN = (
    "tokens", "nll_n", "nll_sum", "nll_max", "nll_first", "entropy_n", "entropy_sum", "entropy_max", "hbar_n",
    "hbar_sum", "hbar_max", "margin_min", "entropy_first", "margin_first", "probe_n", "probe_sum",
)  # fmt: skip
_V1_RISK = ("level", "score", "tokens", "recent", "peak", "evidence", "loop_at")
_V1_COOLDOWN = ("last_alert", "last_firing", "span", "suppressed", "rank")


def migrate_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A version-1 document (positional lists) as a version-2 one (named fields).

    Lists shorter than version 1's latest (written before a field was added) leave the missing fields
    at their defaults, as version 1's reader did; a risk state without a peak takes its level.
    """
    if raw.get("done"):
        return {"version": 2, "done": True}
    out: dict[str, Any] = {
        "version": 2,
        "next_seq": raw["next"],
        "out_seq": raw["out"],
        "stats": dict(zip(_V1_STATS, raw["stats"], strict=False)),
        "model": raw.get("model"),
        "last_seen": float(raw.get("seen", 0.0)),
        "rule_state": raw.get("rules", {}),
        "fired": raw.get("fired", {}),
        "sent": raw.get("sent", {}),
    }
    if "sq" in raw:
        whole, answer, (seen, closed) = raw["sq"]
        out["sequence"] = {
            "all": dict(zip(_V1_SPAN, whole, strict=False)),
            "answer": dict(zip(_V1_SPAN, answer, strict=False)),
            "answer_seen_text": bool(seen),
            "answer_closed": bool(closed),
        }
    risk = dict(zip(_V1_RISK, raw["risk"], strict=False))
    risk.setdefault("peak", risk["level"])
    risk["recent"] = [{"token": t, "weight": w, "rules": r} for t, w, r in risk["recent"]]
    risk["evidence"] = {
        kind: {"level": level, "sentence": sentence, "at": at, "p_wrong": p_wrong}
        for kind, (level, sentence, at, p_wrong) in risk.get("evidence", {}).items()
    }
    out["risk"] = risk
    out["buffer"] = [{"arrived_at": float(at), "audit": json.loads(audit)} for at, audit in raw.get("buf", [])]
    out["cooldown"] = {rule: dict(zip(_V1_COOLDOWN, cd, strict=True)) for rule, cd in raw.get("cd", {}).items()}
    out["skipped"], out["late"] = raw.get("gaps", [0, 0])
    if end := raw.get("end"):
        out["ending"] = {
            "status": end[0],
            "tokens": end[1],
            "deadline": float(end[2]),
            "verification": end[3] if len(end) > 3 else None,
        }
    return out

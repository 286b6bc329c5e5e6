"""What the alerter remembers about one session, and how it is persisted (JSON, one Redis key).

Everything here is bounded: the reorder buffer by ``reorder_max`` audits, the risk window by
``risk_window`` tokens, each rule's state by the rule (the built-ins keep at most ``anomaly_window``
floats), the cooldown table by the number of rules. The state is written with every batch that
touches the session, in the same atomic commit as the outputs and the acknowledgements, so it is
always exactly as new as what was acknowledged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from services.alerter.risk import RiskState
from services.alerter.scores import SequenceStats
from services.common.contracts import AuditEvent, SessionStatus, Verification

STATE_VERSION = 1


def _known(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value)


@dataclass(slots=True)
class Stats:
    """Running sums for the summary."""

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

    def add(self, audit: AuditEvent, low_threshold: float) -> None:
        """Count one audit; a non-finite metric (only a foreign producer writes one) counts as unknown,
        so every aggregate of the summary stays finite or null."""
        m = audit.metrics
        self.tokens += 1
        if _known(m.hbar_s):
            self.hbar_n += 1
            self.hbar_sum += m.hbar_s
            if self.hbar_max is None or m.hbar_s > self.hbar_max:
                self.hbar_max = m.hbar_s
        if _known(m.entropy):
            self.entropy_n += 1
            self.entropy_sum += m.entropy
        if _known(m.surprisal):
            self.surprisal_n += 1
            self.surprisal_sum += m.surprisal
        if _known(m.prob):
            self.prob_n += 1
            if m.prob < low_threshold:
                self.low_n += 1

    def to_json(self) -> list[Any]:
        return [
            self.tokens,
            self.hbar_n,
            self.hbar_sum,
            self.hbar_max,
            self.entropy_n,
            self.entropy_sum,
            self.surprisal_n,
            self.surprisal_sum,
            self.prob_n,
            self.low_n,
        ]

    @classmethod
    def from_json(cls, raw: list[Any]) -> Stats:
        return cls(*raw)


@dataclass(slots=True)
class Ending:
    """The session's terminal lifecycle entry: how it ended, how many tokens it had (if known) and until
    when (wall-clock seconds) its missing audits are waited for."""

    status: SessionStatus
    tokens: int | None
    deadline: float
    verification: Verification | None = None  # the finished entry's verification, for the summary


@dataclass(slots=True)
class SessionState:
    session_id: str
    next_seq: int = 0  # the audit seq processed next; everything below is done (or skipped)
    out_seq: int = 0  # seq of the next uq:alerts entry of this session
    buffer: dict[int, tuple[float, AuditEvent]] = field(default_factory=dict)  # seq -> (arrived at, audit)
    rule_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    cooldown: dict[str, list[Any]] = field(
        default_factory=dict
    )  # rule -> [last_emit, last_fire, span, suppressed, rank]
    fired: dict[str, int] = field(default_factory=dict)  # rule -> tokens it fired on
    sent: dict[str, int] = field(default_factory=dict)  # rule -> alerts sent (firings the cooldown let through)
    stats: Stats = field(default_factory=Stats)
    sequence: SequenceStats = field(default_factory=SequenceStats)
    model: str | None = None  # the model of the session's audits: which calibration profile applies
    risk: RiskState = field(default_factory=RiskState)
    skipped: int = 0  # seqs given up on (never arrived within the reorder timeout)
    late: int = 0  # audits that arrived after their seq was given up on
    ending: Ending | None = None
    done: bool = False
    last_seen: float = 0.0  # wall-clock seconds of the last audit or lifecycle entry

    def dumps(self) -> bytes:
        if self.done:
            return json.dumps({"v": STATE_VERSION, "done": True}).encode()
        raw: dict[str, Any] = {
            "v": STATE_VERSION,
            "next": self.next_seq,
            "out": self.out_seq,
            "stats": self.stats.to_json(),
            "sq": self.sequence.to_json(),
            "model": self.model,
            "risk": self.risk.to_json(),
            "seen": self.last_seen,
        }
        if self.buffer:
            raw["buf"] = [[at, a.model_dump_json()] for _, (at, a) in sorted(self.buffer.items())]
        rule_state = {k: v for k, v in self.rule_state.items() if v}
        if rule_state:
            raw["rules"] = rule_state
        if self.cooldown:
            raw["cd"] = self.cooldown
        if self.fired:
            raw["fired"] = self.fired
        if self.sent:
            raw["sent"] = self.sent
        if self.skipped or self.late:
            raw["gaps"] = [self.skipped, self.late]
        if self.ending is not None:
            end = self.ending
            raw["end"] = [end.status, end.tokens, end.deadline]
            if end.verification is not None:
                raw["end"].append(end.verification.model_dump(mode="json"))
        return json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def loads(cls, session_id: str, data: bytes | str) -> SessionState:
        raw = json.loads(data)
        if raw.get("v") != STATE_VERSION:
            raise ValueError(f"unknown alerter state version {raw.get('v')!r}")
        if raw.get("done"):
            return cls(session_id, done=True)
        buffer: dict[int, tuple[float, AuditEvent]] = {}
        for at, audit_json in raw.get("buf", []):
            audit = AuditEvent.model_validate_json(audit_json)
            buffer[audit.seq] = (float(at), audit)
        skipped, late = raw.get("gaps", [0, 0])
        end = raw.get("end")
        return cls(
            session_id,
            next_seq=raw["next"],
            out_seq=raw["out"],
            buffer=buffer,
            rule_state=raw.get("rules", {}),
            cooldown=raw.get("cd", {}),
            fired=raw.get("fired", {}),
            sent=raw.get("sent", {}),  # absent from states written before it was counted
            stats=Stats.from_json(raw["stats"]),
            sequence=SequenceStats.from_json(raw["sq"]) if "sq" in raw else SequenceStats(),
            model=raw.get("model"),
            risk=RiskState.from_json(raw["risk"]),
            skipped=skipped,
            late=late,
            ending=_ending(end) if end else None,
            last_seen=float(raw.get("seen", 0.0)),
        )


def _ending(raw: list[Any]) -> Ending:
    """``[status, tokens, deadline]`` and, for a verified session, its verification."""
    verification = Verification.model_validate(raw[3]) if len(raw) > 3 else None
    return Ending(raw[0], raw[1], float(raw[2]), verification)

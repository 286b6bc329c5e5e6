"""What the alerter remembers about one session (persisted by services/alerter/state.py, one Redis key).

Everything here is bounded: the reorder buffer by ``reorder_max`` audits, the risk window by
``risk_window`` tokens, each rule's state by the rule (the built-ins keep at most ``anomaly_window``
floats), the cooldown table by the number of rules. The state is written with every batch that
touches the session, in the same atomic commit as the outputs and the acknowledgements, so it is
always exactly as new as what was acknowledged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from services.alerter.risk import RiskState
from services.alerter.scores import SequenceStats
from services.common.contracts import AuditEvent, SessionStatus, Verification


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


@dataclass(slots=True)
class Cooldown:
    """One rule's cooldown in one session (docs/alerts.md, "Floods"): the token of its last alert, of its
    last firing, the tokens the next alert waits, the firings held back since the last alert, and the
    rank of the last alert's severity (a more severe firing alerts at once)."""

    last_alert: int
    last_firing: int
    span: int
    suppressed: int = 0
    rank: int = 0


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
    cooldown: dict[str, Cooldown] = field(default_factory=dict)  # rule -> its cooldown
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

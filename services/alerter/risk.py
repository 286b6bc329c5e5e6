"""Risk level of a session: safe, warning, critical or emergency (pure; see docs/alerts.md).

The rule: a token on which rules fired scores the weight of the most severe one (info 1, warning 2,
critical 4; several rules on one token count once, as they usually see the same trouble), whether or
not the cooldown published an alert for it. The **risk score** is the sum over the session's last
``window`` tokens (32). The level is the highest one whose threshold the score reaches:

| level | score ≥ (default) |
|---|---|
| warning | ``risk_warning`` (4) |
| critical | ``risk_critical`` (12) |
| emergency | ``risk_emergency`` (24) |

It rises as soon as the score reaches a threshold, and falls only when the score drops below
``release`` × the current level's threshold (0.75), so a score hovering at a threshold does not
flap. Each change is one RiskEvent on ``uq:alerts``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from services.common.contracts import RiskLevel, Severity

LEVELS: tuple[RiskLevel, ...] = ("safe", "warning", "critical", "emergency")
WEIGHTS: dict[Severity, int] = {"info": 1, "warning": 2, "critical": 4}


@dataclass(frozen=True, slots=True)
class RiskPolicy:
    window: int = 32
    warning: float = 4
    critical: float = 12
    emergency: float = 24
    release: float = 0.75

    def threshold(self, level: RiskLevel) -> float:
        return (0.0, self.warning, self.critical, self.emergency)[LEVELS.index(level)]

    def level_of(self, score: float) -> RiskLevel:
        if score >= self.emergency:
            return "emergency"
        if score >= self.critical:
            return "critical"
        return "warning" if score >= self.warning else "safe"


@dataclass(slots=True)
class RiskState:
    """A session's level, the tokens it has seen, and its recent firing tokens: ``[token number, weight,
    "RULE_A,RULE_B"]`` for each token within the window on which a rule fired (quiet tokens take no room)."""

    level: RiskLevel = "safe"
    score: int = 0
    tokens: int = 0
    recent: list[list[Any]] = field(default_factory=list)
    peak: RiskLevel = "safe"  # the highest level reached

    def to_json(self) -> list[Any]:
        return [self.level, self.score, self.tokens, self.recent, self.peak]

    @classmethod
    def from_json(cls, raw: list[Any]) -> RiskState:
        level, score, tokens, recent = raw[:4]
        peak = raw[4] if len(raw) > 4 else level  # state written before peaks were kept
        return cls(level, int(score), int(tokens), [list(r) for r in recent], peak)


@dataclass(frozen=True, slots=True)
class RiskChange:
    level: RiskLevel
    previous: RiskLevel
    reason: str


def observe(policy: RiskPolicy, state: RiskState, fired: list[tuple[str, Severity]]) -> RiskChange | None:
    """Add one token's firings (rule name, severity) to ``state``; return the change of level, if any."""
    state.tokens += 1
    recent = state.recent
    if fired:
        weight = max([WEIGHTS[severity] for _, severity in fired])
        recent.append([state.tokens, weight, ",".join(name for name, _ in fired)])
        state.score += weight
    oldest = state.tokens - policy.window
    while recent and recent[0][0] <= oldest:  # left the window
        state.score -= recent.pop(0)[1]
    if not recent and state.level == "safe":
        return None  # the common case: a quiet token in a quiet session
    target = policy.level_of(state.score)
    current = state.level
    if LEVELS.index(target) > LEVELS.index(current):
        state.level = target
        if LEVELS.index(target) > LEVELS.index(state.peak):
            state.peak = target
        reason = f"risk score {state.score:g} over the last {policy.window} tokens reached the {target} threshold {policy.threshold(target):g}"
        return RiskChange(target, current, f"{reason} ({_top_rules(state)})")
    if LEVELS.index(target) < LEVELS.index(current):
        limit = policy.release * policy.threshold(current)
        if state.score < limit:
            state.level = target
            reason = f"risk score {state.score:g} over the last {policy.window} tokens fell below {limit:g}"
            return RiskChange(target, current, f"{reason} ({_top_rules(state)})" if state.score else reason)
    return None


def _top_rules(state: RiskState) -> str:
    counts = Counter(name for _, _, names in state.recent for name in names.split(","))
    return ", ".join(f"{name} ×{n}" for name, n in counts.most_common(4))

"""Risk level of a session: safe, warning, critical or emergency (pure; see docs/alerts.md, "Risk level").

The level comes from evidence, and every change says which in a sentence (the ``reason``):

- **calibrated** (the session's model has a calibration profile, services/alerter/profile.py):
  - *answer*: with a labelled profile, the calibrated P(answer wrong) of the answer span (the first
    line or sentence), judged once, when the answer is complete (or the session ends). Bands:
    ``p_wrong_bands`` (warning, critical, emergency; default 0.5, 0.8, 0.95);
  - *session*: how unusual the whole generation is against the model's own reference sessions: the
    percentile of its mean surprisal among them, judged from ``reference_min_tokens`` tokens on,
    every ``window`` tokens and at the end. Bands: ``reference_bands`` (default 90th, 99th, 99.9th);
  - *loop*: while REPETITION fired within the last ``window`` tokens, at least warning: a degenerate
    loop never reads safe.
  The level is the highest of the three. Expected shares of sessions at each level on ordinary text
  are measured on the reference sessions by ``uq calibrate`` and kept in the profile (``risk_rates``).
- **uncalibrated** (no profile): the rules' firings. A token on which rules fired scores the weight
  of the most severe one (info 1, warning 2, critical 4; several rules on one token count once), whether
  or not the cooldown published an alert for it. The score is the sum over the last ``window`` tokens;
  the level is the highest whose threshold (``warning`` 4, ``critical`` 12, ``emergency`` 24) the score
  reaches. It falls only when the score drops below ``release`` × the current level's threshold (0.75),
  so a score hovering at a threshold does not flap.

Each change is one RiskEvent on ``uq:alerts``; the highest level reached is kept as the ``peak``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from services.common.contracts import RISK_LEVELS, RiskLevel, Severity

LEVELS: tuple[RiskLevel, ...] = RISK_LEVELS
WEIGHTS: dict[Severity, int] = {"info": 1, "warning": 2, "critical": 4}
LOOP_RULE = "REPETITION"
EvidenceKind = Literal["answer", "session", "loop", "rules"]


def rank(level: RiskLevel) -> int:
    return LEVELS.index(level)


def band(value: float, bands: tuple[float, float, float]) -> RiskLevel:
    """The level of ``value`` against rising (warning, critical, emergency) thresholds."""
    level: RiskLevel = "safe"
    for threshold, name in zip(bands, LEVELS[1:], strict=True):
        if value >= threshold:
            level = name
    return level


@dataclass(frozen=True, slots=True)
class RiskPolicy:
    window: int = 32
    warning: float = 4
    critical: float = 12
    emergency: float = 24
    release: float = 0.75
    p_wrong_bands: tuple[float, float, float] = (0.5, 0.8, 0.95)
    reference_bands: tuple[float, float, float] = (0.9, 0.99, 0.999)
    reference_min_tokens: int = 32

    def threshold(self, level: RiskLevel) -> float:
        return (0.0, self.warning, self.critical, self.emergency)[rank(level)]

    def level_of(self, score: float) -> RiskLevel:
        if score >= self.emergency:
            return "emergency"
        if score >= self.critical:
            return "critical"
        return "warning" if score >= self.warning else "safe"


@dataclass(frozen=True, slots=True)
class Judgment:
    """One piece of calibrated evidence: its kind (``answer`` or ``session``), the level it puts the
    session at, and the sentence that says why."""

    kind: EvidenceKind
    level: RiskLevel
    sentence: str
    p_wrong: float | None = None  # the calibrated estimate, for answer evidence
    at: int = 0  # tokens of the session when it was judged


@dataclass(slots=True)
class RiskState:
    """A session's level, the tokens it has seen, its recent firing tokens (``[token number, weight,
    "RULE_A,RULE_B"]`` for each token within the window on which a rule fired; quiet tokens take no room),
    the peak, and the calibrated evidence so far (``kind -> [level, sentence, tokens judged at, P(wrong)]``)."""

    level: RiskLevel = "safe"
    score: int = 0
    tokens: int = 0
    recent: list[list[Any]] = field(default_factory=list)
    peak: RiskLevel = "safe"  # the highest level reached
    evidence: dict[str, list[Any]] = field(default_factory=dict)
    loop_at: int = 0  # token number of the last REPETITION firing (0: none)

    def to_json(self) -> list[Any]:
        return [self.level, self.score, self.tokens, self.recent, self.peak, self.evidence, self.loop_at]

    @classmethod
    def from_json(cls, raw: list[Any]) -> RiskState:
        level, score, tokens, recent = raw[:4]
        peak = raw[4] if len(raw) > 4 else level  # state written before peaks were kept
        evidence = dict(raw[5]) if len(raw) > 5 else {}
        loop_at = int(raw[6]) if len(raw) > 6 else 0
        return cls(level, int(score), int(tokens), [list(r) for r in recent], peak, evidence, loop_at)

    def looping(self, policy: RiskPolicy) -> bool:
        return self.loop_at > 0 and self.tokens - self.loop_at < policy.window


@dataclass(frozen=True, slots=True)
class RiskChange:
    level: RiskLevel
    previous: RiskLevel
    reason: str
    evidence: EvidenceKind
    p_wrong: float | None = None


def observe(
    policy: RiskPolicy,
    state: RiskState,
    fired: list[tuple[str, Severity]],
    judgments: list[Judgment] | None = None,
    calibrated: bool = False,
) -> RiskChange | None:
    """Add one token's firings (rule name, severity) and any new calibrated ``judgments`` to ``state``;
    return the change of level, if any."""
    state.tokens += 1
    recent = state.recent
    if fired:
        weight = max([WEIGHTS[severity] for _, severity in fired])
        recent.append([state.tokens, weight, ",".join(name for name, _ in fired)])
        state.score += weight
        if any(name == LOOP_RULE for name, _ in fired):
            state.loop_at = state.tokens
    oldest = state.tokens - policy.window
    while recent and recent[0][0] <= oldest:  # left the window
        state.score -= recent.pop(0)[1]
    if calibrated:
        return _calibrated(policy, state, judgments or [])
    if not recent and state.level == "safe":
        return None  # the common case: a quiet token in a quiet session
    return _by_rules(policy, state)


def judge(policy: RiskPolicy, state: RiskState, judgments: list[Judgment]) -> RiskChange | None:
    """Apply ``judgments`` made without a new token (at the end of the session)."""
    return _calibrated(policy, state, judgments) if judgments else None


def _raise_peak(state: RiskState, level: RiskLevel) -> None:
    if rank(level) > rank(state.peak):
        state.peak = level


def _by_rules(policy: RiskPolicy, state: RiskState) -> RiskChange | None:
    target = policy.level_of(state.score)
    current = state.level
    if rank(target) > rank(current):
        state.level = target
        _raise_peak(state, target)
        reason = f"risk score {state.score:g} over the last {policy.window} tokens reached the {target} threshold {policy.threshold(target):g}"
        return RiskChange(target, current, f"{reason} ({_top_rules(state)})", "rules")
    if rank(target) < rank(current):
        limit = policy.release * policy.threshold(current)
        if state.score < limit:
            state.level = target
            reason = f"risk score {state.score:g} over the last {policy.window} tokens fell below {limit:g}"
            return RiskChange(target, current, f"{reason} ({_top_rules(state)})" if state.score else reason, "rules")
    return None


def _loop_sentence(policy: RiskPolicy, state: RiskState) -> str:
    n = sum(1 for _, _, names in state.recent if LOOP_RULE in names.split(","))
    return (
        f"the text loops (REPETITION on {n} of the last {min(policy.window, state.tokens)} tokens): "
        "at least warning while it does"
    )


def _calibrated(policy: RiskPolicy, state: RiskState, judgments: list[Judgment]) -> RiskChange | None:
    for j in judgments:
        state.evidence[j.kind] = [j.level, j.sentence, j.at, j.p_wrong]
    looping = state.looping(policy)
    if not judgments and not looping and state.level == "safe":
        return None  # the common case: nothing new, nothing to fall from
    candidates: list[tuple[RiskLevel, EvidenceKind, str]] = [
        (e[0], kind, e[1])  # type: ignore[misc]
        for kind, e in state.evidence.items()
    ]
    if looping:
        candidates.append(("warning", "loop", _loop_sentence(policy, state)))
    target: RiskLevel = max((c[0] for c in candidates), key=rank, default="safe")
    current = state.level
    if target == current:
        return None
    answer = state.evidence.get("answer")
    p_wrong = answer[3] if answer else None
    state.level = target
    _raise_peak(state, target)
    # The evidence that sets the level now: a new judgment first, then the strongest standing one.
    new = {j.kind for j in judgments}
    ordered = sorted(candidates, key=lambda c: (rank(c[0]), c[1] in new), reverse=True)
    if rank(target) > rank(current):
        _, why, sentence = ordered[0]
        return RiskChange(target, current, sentence, why, p_wrong)
    # Falling: say what went away (a loop that ended), then the evidence that still stands.
    went = (
        ""
        if looping or not state.loop_at
        else f"the text stopped looping (no REPETITION in the last {policy.window} tokens)"
    )
    standing = ordered[0][2] if ordered else ""
    reason = "; ".join(part for part in (went, standing) if part) or "no evidence of risk remains"
    kind: EvidenceKind = "loop" if went or not ordered else ordered[0][1]
    return RiskChange(target, current, reason, kind, p_wrong)


def _top_rules(state: RiskState) -> str:
    counts = Counter(name for _, _, names in state.recent for name in names.split(","))
    return ", ".join(f"{name} ×{n}" for name, n in counts.most_common(4))

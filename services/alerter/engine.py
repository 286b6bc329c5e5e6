"""The rules engine: audits of one session in, alerts, risk changes and the summary out (pure: no Redis).

For each session the engine processes audits strictly in ``seq`` order (see docs/alerts.md, "Order"):

- an audit with the expected seq is processed at once, then any buffered successors;
- an audit ahead of the expected seq waits in the session's reorder buffer (at most ``reorder_max``);
- the missing seq is given up on when the buffer is full, or when the oldest buffered audit has waited
  ``reorder_timeout_ms`` (checked by :meth:`Engine.tick`); a late audit for a seq given up on is ignored;
- when the session has ended (:meth:`Engine.end`) and every seq below its token count is done, the
  summary is emitted and the session is closed; if audits are missing, at ``end_timeout_ms`` at the latest.

Per token every rule runs; a firing becomes an alert unless the rule's per-session cooldown holds
it back (docs/alerts.md, "Floods"); the firings feed the risk level (services/alerter/risk.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from services.alerter import profile
from services.alerter.risk import RiskPolicy, observe
from services.alerter.rules import Finding, Rule
from services.alerter.scores import SpanStats, features
from services.alerter.session import Ending, SessionState
from services.alerter.settings import AlerterSettings
from services.common.contracts import (
    AlertEvent,
    AuditEvent,
    RiskEvent,
    SequenceScores,
    SessionStatus,
    Severity,
    SummaryEvent,
)

log = logging.getLogger(__name__)

AlerterOutput = AlertEvent | RiskEvent | SummaryEvent
RANK: dict[Severity, int] = {"info": 0, "warning": 1, "critical": 2}


class Engine:
    """Applies ``rules`` to sessions' audits under ``settings`` (thresholds of cooldown, risk, order)."""

    def __init__(self, rules: Sequence[Rule], settings: AlerterSettings) -> None:
        self.rules = list(rules)
        self.settings = settings
        self.policy = RiskPolicy(
            settings.risk_window,
            settings.risk_warning,
            settings.risk_critical,
            settings.risk_emergency,
            settings.risk_release,
        )
        self.rule_errors: dict[str, int] = {}
        self._cooldown = settings.cooldown_tokens
        self._backoff = settings.cooldown_backoff
        self._cooldown_max = settings.cooldown_max_tokens
        self._low = settings.low_confidence_threshold

    # --- entry points ---------------------------------------------------------------------------

    def accept(self, st: SessionState, audit: AuditEvent, now: float) -> list[AlerterOutput]:
        """Take one audit of the session (in any order); return what it lets the session emit."""
        st.last_seen = now
        if st.done or audit.seq < st.next_seq or audit.seq in st.buffer:
            if not st.done and audit.seq < st.next_seq:
                st.late += 1
            return []
        if audit.seq > st.next_seq:
            st.buffer[audit.seq] = (now, audit)
            if len(st.buffer) <= self.settings.reorder_max:
                return []
            out = self._skip_gap(st)
        else:
            out = self._process(st, audit)
            st.next_seq += 1
            out += self._drain(st)
        return out + self._finish_if_complete(st)

    def end(self, st: SessionState, status: SessionStatus, tokens: int | None, now: float) -> list[AlerterOutput]:
        """The session's terminal lifecycle entry arrived; summary now if nothing is missing."""
        st.last_seen = now
        if st.done or st.ending is not None:
            return []
        wait_ms = self.settings.end_timeout_ms if tokens is not None else self.settings.reorder_timeout_ms
        st.ending = Ending(status, tokens, now + wait_ms / 1000)
        return self._finish_if_complete(st)

    def tick(self, st: SessionState, now: float) -> list[AlerterOutput]:
        """Apply the reorder and end timeouts."""
        out: list[AlerterOutput] = []
        if st.done:
            return out
        timeout = self.settings.reorder_timeout_ms / 1000
        while st.buffer and now - min(at for at, _ in st.buffer.values()) >= timeout:
            out += self._skip_gap(st)
        if st.ending is not None and now >= st.ending.deadline:
            while st.buffer:
                out += self._skip_gap(st)
            out.append(self._summary(st))
        return out + self._finish_if_complete(st)

    def waiting(self, st: SessionState) -> bool:
        """Whether the session has a timeout pending (tick has something to do)."""
        return not st.done and (bool(st.buffer) or st.ending is not None)

    # --- processing -----------------------------------------------------------------------------

    def _skip_gap(self, st: SessionState) -> list[AlerterOutput]:
        first = min(st.buffer)
        st.skipped += first - st.next_seq
        log.warning(
            "gave up waiting for audits",
            extra={"session_id": st.session_id, "from_seq": st.next_seq, "to_seq": first - 1},
        )
        st.next_seq = first
        return self._drain(st)

    def _drain(self, st: SessionState) -> list[AlerterOutput]:
        out: list[AlerterOutput] = []
        while st.next_seq in st.buffer:
            _, audit = st.buffer.pop(st.next_seq)
            out += self._process(st, audit)
            st.next_seq += 1
        return out

    def _process(self, st: SessionState, audit: AuditEvent) -> list[AlerterOutput]:
        st.stats.add(audit, self._low)
        st.sequence.add(audit.text, audit.metrics)
        if st.model is None:
            st.model = audit.model
        out: list[AlerterOutput] = []
        fired: list[tuple[str, Severity]] = []
        for rule in self.rules:
            name = rule.name
            state = st.rule_state.get(name)
            if state is None:
                state = st.rule_state[name] = {}
            try:
                finding = rule.check(audit, state)
            except Exception:
                self.rule_errors[name] = self.rule_errors.get(name, 0) + 1
                log.exception("rule failed", extra={"rule": name, "session_id": st.session_id, "seq": audit.seq})
                continue
            if finding is None:
                continue
            severity = finding.severity or rule.severity
            fired.append((name, severity))
            st.fired[name] = st.fired.get(name, 0) + 1
            alert = self._alert(st, name, severity, audit, finding)
            if alert is not None:
                out.append(alert)
                st.sent[name] = st.sent.get(name, 0) + 1
        change = observe(self.policy, st.risk, fired)
        if change is not None:
            out.append(
                RiskEvent(
                    session_id=st.session_id,
                    seq=self._next_out(st),
                    level=change.level,
                    previous=change.previous,
                    reason=change.reason,
                    token_seq=audit.seq,
                )
            )
        return out

    def _alert(
        self, st: SessionState, rule: str, severity: Severity, audit: AuditEvent, finding: Finding
    ) -> AlertEvent | None:
        """Cooldown with back-off: the first firing of an episode alerts; while the rule keeps firing the
        next alert waits ``span`` tokens, and ``span`` grows ×backoff (up to the maximum) per alert. An
        episode ends when the rule has not fired for ``span`` tokens. A more severe firing alerts at once."""
        seq = audit.seq
        cd = st.cooldown.get(rule)
        suppressed = 0
        since = 0
        if cd is None or seq - cd[1] >= cd[2]:
            cd = st.cooldown[rule] = [seq, seq, self._cooldown, 0, RANK[severity]]
        else:
            last_emit, _, span, suppressed, rank = cd
            cd[1] = seq
            if seq - last_emit < span and RANK[severity] <= rank:
                cd[3] = suppressed + 1
                return None
            since = last_emit
            cd[0] = seq
            cd[2] = min(int(span * self._backoff), self._cooldown_max)
            cd[3] = 0
            cd[4] = RANK[severity]
        message = finding.message
        values = dict(finding.values)
        if suppressed:
            message += f" (+{suppressed} more since #{since})"
            values["suppressed"] = float(suppressed)
        return AlertEvent(
            session_id=st.session_id,
            seq=self._next_out(st),
            rule=rule,
            severity=severity,
            message=message[:2048],
            token_seq=seq,
            token_text=audit.text,
            values={k: v for k, v in values.items() if v is None or math.isfinite(v)},
        )

    def _finish_if_complete(self, st: SessionState) -> list[AlerterOutput]:
        ending = st.ending
        if st.done or ending is None or ending.tokens is None or st.buffer or st.next_seq < ending.tokens:
            return []
        return [self._summary(st)]

    def _summary(self, st: SessionState) -> SummaryEvent:
        assert st.ending is not None
        s = st.stats
        calibration = profile.for_model(st.model, self.settings.profiles_dir)
        summary = SummaryEvent(
            session_id=st.session_id,
            seq=self._next_out(st),
            tokens=s.tokens,
            firings_by_rule=dict(sorted(st.fired.items())),
            alerts_sent_by_rule=dict(sorted(st.sent.items())),
            max_hbar_s=s.hbar_max,
            mean_hbar_s=s.hbar_sum / s.hbar_n if s.hbar_n else None,
            mean_entropy=s.entropy_sum / s.entropy_n if s.entropy_n else None,
            perplexity=perplexity(s.surprisal_sum / s.surprisal_n) if s.surprisal_n else None,
            nll_bits=s.surprisal_sum if s.surprisal_n else None,
            low_confidence_share=s.low_n / s.prob_n if s.prob_n else None,
            final_risk=st.risk.level,
            peak_risk=st.risk.peak,
            status=st.ending.status,
            p_wrong=calibration.p_wrong(features(st.sequence)) if calibration and calibration.p_wrong else None,
            profile=calibration.id if calibration else None,
            answer_scores=_scores(st.sequence.answer),
            scores=_scores(st.sequence.all),
        )
        st.done = True
        st.buffer.clear()
        return summary

    @staticmethod
    def _next_out(st: SessionState) -> int:
        seq = st.out_seq
        st.out_seq += 1
        return seq


def _scores(span: SpanStats) -> SequenceScores | None:
    return SequenceScores(tokens=span.tokens, **span.scores()) if span.tokens else None


def perplexity(mean_surprisal_bits: float) -> float | None:
    """``2^(mean surprisal)``, or None where that is no finite number (a mean over 1023 bits per token)."""
    if not math.isfinite(mean_surprisal_bits) or mean_surprisal_bits >= 1024.0:
        return None
    return float(2.0**mean_surprisal_bits)

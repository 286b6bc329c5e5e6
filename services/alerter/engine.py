"""The rules engine: audits of one session in, alerts, risk changes and the summary out (pure: no Redis).

For each session the engine processes audits strictly in ``seq`` order (see docs/alerts.md, "Order"):

- an audit with the expected seq is processed at once, then any buffered successors;
- an audit ahead of the expected seq waits in the session's reorder buffer (at most ``reorder_max``);
- the missing seq is given up on when the buffer is full, or when the oldest buffered audit has waited
  ``reorder_timeout_ms`` (checked by :meth:`RulesEngine.tick`); a late audit for a seq given up on is ignored;
- when the session has ended (:meth:`RulesEngine.end`) and every seq below its token count is done, the
  summary is emitted and the session is closed; if audits are missing, at ``end_timeout_ms`` at the latest.

Per token every rule runs; a firing becomes an alert unless the rule's per-session cooldown holds
it back (docs/alerts.md, "Floods"). The risk level (services/alerter/risk.py) follows the calibrated
evidence when the session's model has a calibration profile (the answer's P(wrong) once the answer is
complete, the session's unusualness against the reference sessions, loops), and the firings otherwise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

from services.alerter import profile
from services.alerter.profile import Profile
from services.alerter.risk import Judgment, RiskChange, RiskPolicy, band, judge, observe
from services.alerter.rules import Finding, Rule, describe
from services.alerter.scores import SpanStats, features
from services.alerter.session import Cooldown, Ending, SessionState
from services.alerter.settings import AlerterSettings
from services.common.contracts import (
    AlertEvent,
    AlertFinding,
    AuditEvent,
    RiskEvent,
    ScoresEvent,
    SequenceScores,
    SessionStatus,
    Severity,
    SummaryEvent,
    Verification,
)

log = logging.getLogger(__name__)

AlerterOutput = AlertEvent | RiskEvent | ScoresEvent | SummaryEvent
RANK: dict[Severity, int] = {"info": 0, "warning": 1, "critical": 2}


class RulesEngine:
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
            tuple(settings.risk_p_wrong_bands),  # type: ignore[arg-type]
            tuple(settings.risk_reference_bands),  # type: ignore[arg-type]
            settings.risk_reference_min_tokens,
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

    def end(
        self,
        st: SessionState,
        status: SessionStatus,
        tokens: int | None,
        now: float,
        verification: Verification | None = None,
    ) -> list[AlerterOutput]:
        """The session's terminal lifecycle entry arrived; summary now if nothing is missing."""
        st.last_seen = now
        if st.done or st.ending is not None:
            return []
        wait_ms = self.settings.end_timeout_ms if tokens is not None else self.settings.reorder_timeout_ms
        st.ending = Ending(status, tokens, now + wait_ms / 1000, verification)
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
            out += self._final_risk(st)
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
        answer_was_open = not st.sequence.span.closed
        st.sequence.add(audit.text, audit.metrics)
        if st.model is None:
            st.model = audit.model
        out: list[AlerterOutput] = []
        fired: list[tuple[str, Severity]] = []
        findings: list[tuple[str, Severity, Finding]] = []
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
            findings.append((name, severity, finding))
            st.fired[name] = st.fired.get(name, 0) + 1
        if findings:
            alert = self._alert(st, findings, audit)
            if alert is not None:
                out.append(alert)
                for name in alert.rules:
                    st.sent[name] = st.sent.get(name, 0) + 1
        calibration = self.calibration(st.model)
        judgments = self._judgments(st, calibration, final=False) if calibration is not None else None
        change = observe(self.policy, st.risk, fired, judgments, calibrated=calibration is not None)
        if change is not None:
            out.append(self._risk_event(st, change, audit.seq, calibration))
        every = self.settings.scores_every
        if every and ((answer_was_open and st.sequence.span.closed) or st.sequence.all.tokens % every == 0):
            out.append(self._scores_event(st, audit.seq, calibration))
        return out

    def _scores_event(self, st: SessionState, token_seq: int, calibration: Profile | None) -> ScoresEvent:
        answer = st.risk.evidence.get("answer")
        return ScoresEvent(
            session_id=st.session_id,
            seq=self._next_out(st),
            token_seq=token_seq,
            tokens=st.sequence.all.tokens,
            answer_complete=st.sequence.span.closed,
            answer_scores=_scores(st.sequence.answer),
            scores=_scores(st.sequence.all),
            p_wrong=answer[3] if answer else None,
            profile=calibration.id if calibration is not None else None,
        )

    # --- calibrated evidence --------------------------------------------------------------------

    def calibration(self, model: str | None) -> Profile | None:
        """The calibration profile of ``model``, or None: the session runs uncalibrated."""
        return profile.for_model(model, self.settings.profiles_dir)

    def _judgments(self, st: SessionState, calibration: Profile, final: bool) -> list[Judgment]:
        """What is due now: the answer's P(wrong) once the answer is complete (or at the end), the
        session against the reference sessions every ``window`` tokens from the minimum on (and at the end)."""
        out: list[Judgment] = []
        seq = st.sequence
        evidence = st.risk.evidence
        model = calibration.p_wrong
        if model is not None and "answer" not in evidence and seq.answer.tokens:
            if not model.applies(seq.answer.tokens):
                out.append(self._outside(st, calibration))
            elif seq.span.closed or final:
                out.append(self._judge_answer(st, calibration))
        n, first, every = seq.all.tokens, self.policy.reference_min_tokens, self.policy.window
        if calibration.session_quantiles and n >= first:
            last = evidence.get("session")
            if (n - first) % every == 0 or (final and (last is None or last[2] != n)):
                judged = self._judge_session(st, calibration)
                if judged is not None:
                    out.append(judged)
        return out

    def _judge_answer(self, st: SessionState, calibration: Profile) -> Judgment:
        assert calibration.p_wrong is not None
        p = calibration.p_wrong(features(st.sequence))
        bands = self.policy.p_wrong_bands
        level = band(p, bands)
        n = st.sequence.answer.tokens
        where = _where(level, bands, lambda t: f"{t:.2f}")
        sentence = (
            f"P(wrong) = {p:.2f} for the answer ({n} token{'s' if n != 1 else ''}; "
            f"calibrated on labelled QA, profile {calibration.id}): {where}"
        )
        return Judgment("answer", level, sentence, p, st.sequence.all.tokens)

    def _outside(self, st: SessionState, calibration: Profile) -> Judgment:
        """The answer has grown longer than any the P(wrong) map was fitted on: it is not judged."""
        assert calibration.p_wrong is not None
        n = calibration.p_wrong.max_answer_tokens
        sentence = (
            f"the answer is longer than the {n} tokens of any answer P(wrong) was calibrated on "
            f"(profile {calibration.id}): not judged as a short answer"
        )
        return Judgment("answer", "safe", sentence, None, st.sequence.all.tokens)

    def _judge_session(self, st: SessionState, calibration: Profile) -> Judgment | None:
        mean = st.sequence.all.scores()["mean_nll"]
        if mean is None:
            return None
        pct = calibration.percentile("all.mean_nll", mean)
        if pct is None:
            return None
        bands = self.policy.reference_bands
        level = band(pct, bands)
        n = st.sequence.all.tokens
        where = _where(level, bands, _pct)
        above = "every one" if pct >= 1.0 else f"{pct * 100:.1f} %"
        sentence = (
            f"mean surprisal {mean:.2f} bits over {n} tokens is above {above} of the model's reference "
            f"sessions (profile {calibration.id}): {where}"
        )
        return Judgment("session", level, sentence, None, n)

    def _risk_event(
        self, st: SessionState, change: RiskChange, token_seq: int, calibration: Profile | None
    ) -> RiskEvent:
        return RiskEvent(
            session_id=st.session_id,
            seq=self._next_out(st),
            level=change.level,
            previous=change.previous,
            reason=change.reason[:2048],
            token_seq=token_seq,
            evidence=change.evidence,
            p_wrong=change.p_wrong,
            profile=calibration.id if calibration is not None else None,
        )

    def _final_risk(self, st: SessionState) -> list[AlerterOutput]:
        """The judgments due at the end (an answer never completed, the whole session), applied."""
        calibration = self.calibration(st.model)
        if calibration is None:
            return []
        change = judge(self.policy, st.risk, self._judgments(st, calibration, final=True))
        if change is None:
            return []
        return [self._risk_event(st, change, max(st.next_seq - 1, 0), calibration)]

    def _alert(
        self, st: SessionState, findings: list[tuple[str, Severity, Finding]], audit: AuditEvent
    ) -> AlertEvent | None:
        """One alert for the token, listing every rule that fired on it, unless every one of them is held
        back by its cooldown. Cooldown with back-off, per rule: the first firing of an episode alerts;
        while the rule keeps firing the next alert waits ``span`` tokens, and ``span`` grows ×backoff (up
        to the maximum) per alert. An episode ends when the rule has not fired for ``span`` tokens. A more
        severe firing alerts at once. Every rule listed on an alert that is sent counts as alerted."""
        seq = audit.seq
        due = False
        for name, severity, _ in findings:
            cd = st.cooldown.get(name)
            if (
                cd is None
                or seq - cd.last_firing >= cd.span
                or seq - cd.last_alert >= cd.span
                or RANK[severity] > cd.rank
            ):
                due = True
        if not due:
            for name, _, _ in findings:
                cd = st.cooldown[name]
                cd.last_firing = seq
                cd.suppressed += 1
            return None
        ordered = sorted(findings, key=lambda f: RANK[f[1]], reverse=True)  # stable: rule order within a severity
        prefix = describe(audit) + ": "
        parts: list[str] = []
        listed: list[AlertFinding] = []
        for name, severity, finding in ordered:
            cd = st.cooldown.get(name)
            message, values = finding.message, dict(finding.values)
            if cd is None or seq - cd.last_firing >= cd.span:
                st.cooldown[name] = Cooldown(seq, seq, self._cooldown, 0, RANK[severity])
            else:
                span = min(int(cd.span * self._backoff), self._cooldown_max)
                st.cooldown[name] = Cooldown(seq, seq, span, 0, RANK[severity])
                if cd.suppressed:
                    message += f" (+{cd.suppressed} more since #{cd.last_alert})"
                    values["suppressed"] = float(cd.suppressed)
            values = {k: v for k, v in values.items() if v is None or math.isfinite(v)}
            listed.append(AlertFinding(rule=name, severity=severity, message=message[:2048], values=values))
            parts.append(message[len(prefix) :] if parts and message.startswith(prefix) else message)
        top = listed[0]
        return AlertEvent(
            session_id=st.session_id,
            seq=self._next_out(st),
            rule=top.rule,
            severity=top.severity,
            message="; ".join(parts)[:2048],
            token_seq=seq,
            token_text=audit.text,
            values=top.values,
            rules=[f.rule for f in listed],
            findings=listed,
        )

    def _finish_if_complete(self, st: SessionState) -> list[AlerterOutput]:
        ending = st.ending
        if st.done or ending is None or ending.tokens is None or st.buffer or st.next_seq < ending.tokens:
            return []
        return [*self._final_risk(st), self._summary(st)]

    def _summary(self, st: SessionState) -> SummaryEvent:
        assert st.ending is not None
        s = st.stats
        calibration = self.calibration(st.model)
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
            p_wrong=_p_wrong(calibration, st),
            profile=calibration.id if calibration else None,
            answer_scores=_scores(st.sequence.answer),
            scores=_scores(st.sequence.all),
            verification=st.ending.verification,
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


def _p_wrong(calibration: Profile | None, st: SessionState) -> float | None:
    """The summary's calibrated P(wrong): null without a labelled profile, or for an answer longer than
    the calibration's (outside what it was fitted on)."""
    if calibration is None or calibration.p_wrong is None or not calibration.p_wrong.applies(st.sequence.answer.tokens):
        return None
    return calibration.p_wrong(features(st.sequence))


def _where(level: str, bands: tuple[float, float, float], fmt: Callable[[float], str]) -> str:
    """Where a value's level sits among the bands, in words: "in the critical band (≥ 0.80)"."""
    if level == "safe":
        return f"below the warning band ({fmt(bands[0])})"
    return f"in the {level} band (≥ {fmt(bands[('warning', 'critical', 'emergency').index(level)])})"


def _pct(q: float) -> str:
    """0.99 → "99th percentile"."""
    n = f"{q * 100:g}"
    suffix = "th" if n.endswith(("11", "12", "13")) else {"1": "st", "2": "nd", "3": "rd"}.get(n[-1], "th")
    return f"{n}{suffix} percentile"


def perplexity(mean_surprisal_bits: float) -> float | None:
    """``2^(mean surprisal)``, or None where that is no finite number (a mean over 1023 bits per token)."""
    if not math.isfinite(mean_surprisal_bits) or mean_surprisal_bits >= 1024.0:
        return None
    return float(2.0**mean_surprisal_bits)

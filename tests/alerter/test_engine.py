from __future__ import annotations

import math
import random
from typing import Any

import pytest

from services.alerter import state
from services.alerter.engine import AlerterOutput, RulesEngine, perplexity
from services.alerter.rules import Finding, Rule
from services.alerter.ruleset import load_rules
from services.alerter.session import SessionState
from services.common.contracts import AuditEvent
from tests.alerter.factory import audit, scripted, settings, view

QUANTUM = ["examples.quantum_rule:QuantumUncertainty"]

#: What the scripted session must produce: (seq, type, rule or level, token_seq).
#: One alert per token, named by its most severe rule.
EXPECTED = [
    (0, "alert", "LOW_CONFIDENCE", 7),
    (1, "alert", "HIGH_UNCERTAINTY", 10),
    (2, "risk", "warning", 11),
    (3, "alert", "QUANTUM_UNCERTAINTY", 20),
    (4, "risk", "critical", 20),
]


def engine(**overrides: Any) -> RulesEngine:
    s = settings(**overrides)
    return RulesEngine(load_rules(s), s)


def run(e: RulesEngine, audits: list[AuditEvent], tokens: int | None = None) -> list[AlerterOutput]:
    st = SessionState(audits[0].session_id if audits else "s1")
    out: list[AlerterOutput] = []
    for a in audits:
        out += e.accept(st, a, 0.0)
    out += e.end(st, "finished", len(audits) if tokens is None else tokens, 0.0)
    return out


def brief(out: list[AlerterOutput]) -> list[tuple[int, str, str, int]]:
    rows = []
    for o in out:
        if o.type == "alert":
            rows.append((o.seq, o.type, o.rule, o.token_seq))
        elif o.type == "risk":
            rows.append((o.seq, o.type, o.level, o.token_seq))
    return rows


def test_scripted_session_gives_exactly_the_expected_alerts() -> None:
    out = run(engine(python_rules=QUANTUM), scripted())
    assert brief(out) == EXPECTED
    first = out[0]
    assert first.type == "alert"
    assert (first.message, first.severity, first.token_text) == (
        'token " Paris" (#7): p = 0.12 below 0.30',
        "info",
        " Paris",
    )
    both = out[1]
    assert both.type == "alert" and both.severity == "warning"
    # every rule that fired on the token, the most severe first; LOW_CONFIDENCE's own cooldown held it,
    # but it fired on this token, so the token's one alert lists it
    assert both.rules == ["HIGH_UNCERTAINTY", "UNCERTAINTY_SPIKE", "ANOMALY", "LOW_CONFIDENCE"]
    assert [f.rule for f in both.findings] == both.rules
    assert both.message.startswith('token " w10" (#10): ℏₛ = 2.80 above 2.50; ℏₛ = 2.80 jumped')
    assert both.message.count("token ") == 1  # the token is named once
    quantum = out[3]
    assert quantum.type == "alert" and quantum.severity == "critical"
    assert quantum.rules == ["QUANTUM_UNCERTAINTY", "HIGH_UNCERTAINTY", "UNCERTAINTY_SPIKE", "ANOMALY"]
    held = quantum.findings[1]
    assert held.message.endswith("(+3 more since #10)") and held.values["suppressed"] == 3.0
    summary = out[-1]
    assert summary.type == "summary" and summary.seq == 5
    assert summary.tokens == 24
    assert summary.firings_by_rule == {
        "ANOMALY": 5,
        "HIGH_UNCERTAINTY": 5,
        "LOW_CONFIDENCE": 5,
        "QUANTUM_UNCERTAINTY": 1,
        "UNCERTAINTY_SPIKE": 5,
    }
    sent = [rule for o in out if o.type == "alert" for rule in o.rules]
    assert summary.alerts_sent_by_rule == {rule: sent.count(rule) for rule in sorted(set(sent))}
    assert summary.alerts_by_rule == summary.firings_by_rule  # the deprecated name, same counts
    assert summary.max_hbar_s == 3.2
    assert summary.mean_hbar_s == pytest.approx((19 * 0.5 + 4 * 2.8 + 3.2) / 24)
    nll = -(19 * -0.152003093445 + -3.058893689 + 4 * -2.321928095)
    assert summary.nll_bits == pytest.approx(nll)
    assert summary.perplexity == pytest.approx(2 ** (nll / 24))
    assert summary.low_confidence_share == pytest.approx(5 / 24)
    assert (summary.final_risk, summary.status) == ("critical", "finished")


def test_quantum_rule_declarative_and_python_agree(tmp_path: Any) -> None:
    file = tmp_path / "rules.yaml"
    file.write_text(
        "rules: [{name: QUANTUM_UNCERTAINTY, metric: hbar_s, operator: '>', threshold: 3.0,"
        " text_contains: quantum, severity: critical}]"
    )
    declarative = [o for o in run(engine(rules_file=str(file)), scripted()) if o.type == "alert"]
    python = [o for o in run(engine(python_rules=QUANTUM), scripted()) if o.type == "alert"]

    def quantum(alerts: list[Any]) -> list[tuple[int, list[str], Any]]:
        return [
            (o.token_seq, o.rules, next(f for f in o.findings if f.rule == "QUANTUM_UNCERTAINTY"))
            for o in alerts
            if "QUANTUM_UNCERTAINTY" in o.rules
        ]

    d, p = quantum(declarative), quantum(python)
    assert [(t, r) for t, r, _ in d] == [(t, r) for t, r, _ in p]
    assert [t for t, _, _ in d] == [20]
    assert d[0][2].message == 'token " quantum" (#20): ℏₛ = 3.20 above 3.00'
    assert d[0][2].values == {"hbar_s": 3.2, "value": 3.2}
    assert d[0][2].severity == p[0][2].severity == "critical"


@pytest.mark.parametrize("seed", range(5))
def test_shuffled_delivery_gives_the_same_result(seed: int) -> None:
    audits = scripted()
    reference = [view(o) for o in run(engine(python_rules=QUANTUM), audits)]
    shuffled = audits[:]
    random.Random(seed).shuffle(shuffled)
    assert [view(o) for o in run(engine(python_rules=QUANTUM), shuffled)] == reference


def test_state_persisted_at_any_point_continues_identically() -> None:
    e = engine(python_rules=QUANTUM)
    audits = scripted()
    random.Random(1).shuffle(audits)
    reference = [view(o) for o in run(e, audits)]
    for cut in range(0, len(audits), 5):
        st = SessionState("s1")
        out: list[AlerterOutput] = []
        for i, a in enumerate(audits):
            if i == cut:
                st = state.load("s1", state.dump(st))  # a restart: only the persisted state survives
            out += e.accept(st, a, 0.0)
        out += e.end(st, "finished", len(audits), 0.0)
        assert [view(o) for o in out] == reference


def test_rambling_session_yields_a_handful_of_alerts() -> None:
    e = engine(builtin_rules=["services.alerter.builtin:LowConfidence"])
    out = run(e, [audit(seq, prob=0.1) for seq in range(256)])
    alerts = [o for o in out if o.type == "alert"]
    assert [a.token_seq for a in alerts] == [0, 8, 24, 56, 120, 248]  # cooldown 8, ×2 each time
    assert [a.values.get("suppressed") for a in alerts] == [None, 7.0, 15.0, 31.0, 63.0, 127.0]
    summary = out[-1]
    assert summary.type == "summary"
    assert summary.firings_by_rule == {"LOW_CONFIDENCE": 256}  # tokens it fired on
    assert summary.alerts_sent_by_rule == {"LOW_CONFIDENCE": 6}  # what the cooldown let through


def test_sent_alerts_are_counted_across_a_restart() -> None:
    e = engine(builtin_rules=["services.alerter.builtin:LowConfidence"])
    st = SessionState("s1")
    out: list[AlerterOutput] = []
    for seq in range(64):
        if seq == 30:
            st = state.load("s1", state.dump(st))
        out += e.accept(st, audit(seq, prob=0.1), 0.0)
    out += e.end(st, "finished", 64, 0.0)
    assert [o.token_seq for o in out if o.type == "alert"] == [0, 8, 24, 56]
    assert out[-1].type == "summary"
    assert (out[-1].firings_by_rule, out[-1].alerts_sent_by_rule) == ({"LOW_CONFIDENCE": 64}, {"LOW_CONFIDENCE": 4})


def test_a_new_episode_starts_after_a_quiet_cooldown() -> None:
    e = engine(builtin_rules=["services.alerter.builtin:LowConfidence"])
    probs = {0: 0.1, 1: 0.1, 9: 0.1, 10: 0.1}  # #9 is 8 tokens after the last firing: new episode
    out = run(e, [audit(seq, prob=probs.get(seq, 0.9)) for seq in range(12)])
    assert [(o.token_seq, o.message[-19:]) for o in out if o.type == "alert"] == [
        (0, "p = 0.10 below 0.30"),
        (9, "p = 0.10 below 0.30"),
    ]


class Escalating(Rule):
    name = "ESCALATING"
    severity = "info"

    def check(self, audit: AuditEvent, state: dict[str, Any]) -> Finding | None:
        return Finding("bad", severity="critical" if audit.seq == 3 else None)


class Broken(Rule):
    name = "BROKEN"

    def check(self, audit: AuditEvent, state: dict[str, Any]) -> Finding | None:
        raise ZeroDivisionError("user bug")


def test_more_severe_firing_breaks_through_the_cooldown() -> None:
    e = RulesEngine([Escalating()], settings())
    out = run(e, [audit(seq) for seq in range(6)])
    assert [(o.token_seq, o.severity) for o in out if o.type == "alert"] == [(0, "info"), (3, "critical")]


def test_a_failing_rule_is_counted_and_the_others_go_on() -> None:
    e = RulesEngine([Broken(), *load_rules(settings())], settings())
    out = run(e, [audit(0, prob=0.1)])
    assert [o.rule for o in out if o.type == "alert"] == ["LOW_CONFIDENCE"]
    assert e.rule_errors == {"BROKEN": 1}


def test_reorder_gap_is_given_up_after_the_timeout() -> None:
    e = engine(reorder_timeout_ms=1000)
    st = SessionState("s1")
    assert e.accept(st, audit(0), 10.0) == []
    assert e.accept(st, audit(2, prob=0.1), 10.0) == []  # waits for #1
    assert e.waiting(st)
    assert e.tick(st, 10.5) == []
    out = e.tick(st, 11.0)
    assert [(o.type, o.token_seq) for o in out] == [("alert", 2)]
    assert (st.next_seq, st.skipped) == (3, 1)
    assert e.accept(st, audit(1, prob=0.1), 11.5) == []  # too late: ignored
    assert st.late == 1


def test_reorder_buffer_is_bounded() -> None:
    e = engine(reorder_max=3)
    st = SessionState("s1")
    for seq in (2, 3, 4):
        e.accept(st, audit(seq), 0.0)
    assert len(st.buffer) == 3
    e.accept(st, audit(5), 0.0)  # a fourth: give up on #0 and #1
    assert (st.next_seq, st.skipped, st.buffer) == (6, 2, {})


def test_end_before_the_last_audits_waits_for_them() -> None:
    e = engine()
    st = SessionState("s1")
    e.accept(st, audit(0), 0.0)
    assert e.end(st, "finished", 3, 0.0) == []
    assert e.accept(st, audit(2), 0.0) == []
    out = e.accept(st, audit(1), 0.0)
    assert [o.type for o in out] == ["summary"]
    assert out[0].type == "summary" and out[0].tokens == 3
    assert st.done
    assert e.accept(st, audit(3), 0.0) == []


def test_end_with_missing_audits_summarises_at_the_end_timeout() -> None:
    e = engine(end_timeout_ms=5000)
    st = SessionState("s1")
    e.accept(st, audit(0), 0.0)
    e.accept(st, audit(2), 0.0)
    assert e.end(st, "cancelled", 4, 0.0) == []
    assert e.tick(st, 4.0) == []  # reorder timeout (2 s) gave up on #1 and processed #2
    assert (st.next_seq, st.skipped) == (3, 1)
    out = e.tick(st, 5.0)
    assert out[0].type == "summary"
    assert (out[0].tokens, out[0].status) == (2, "cancelled")


def test_sessions_without_audits_or_token_count() -> None:
    e = engine()
    st = SessionState("s1")
    out = e.end(st, "failed", 0, 0.0)
    assert out[0].type == "summary"
    assert (out[0].tokens, out[0].perplexity, out[0].final_risk, out[0].status) == (0, None, "safe", "failed")
    st = SessionState("s2")
    e.accept(st, audit(0, session_id="s2"), 0.0)
    assert e.end(st, "failed", None, 0.0) == []  # no token count: wait the reorder timeout
    assert [o.type for o in e.tick(st, 2.0)] == ["summary"]


def test_every_aggregate_of_the_summary_is_finite_or_null() -> None:
    """A mean surprisal beyond float range gives no perplexity (it was 2^1000 ≈ 1e301), and a non-finite
    metric from a foreign producer counts as unknown instead of making every sum infinite."""
    floor_bits = 9999 / math.log(2)  # what a -9999 logprob ("below the floor") used to become
    out = run(engine(), [audit(0, prob=0.5, surprisal=floor_bits), audit(1, prob=0.5, surprisal=floor_bits)])
    summary = out[-1]
    assert summary.type == "summary"
    assert summary.perplexity is None
    assert summary.nll_bits == pytest.approx(2 * floor_bits)
    foreign = [audit(0, prob=0.5), audit(1, prob=0.25, surprisal=math.inf, hbar_s=math.inf, entropy=math.inf)]
    summary = run(engine(), foreign)[-1]
    assert summary.type == "summary"
    assert (summary.nll_bits, summary.perplexity) == (pytest.approx(1.0), pytest.approx(2.0))
    assert (summary.max_hbar_s, summary.mean_hbar_s, summary.mean_entropy) == (0.5, 0.5, 0.5)
    values = [summary.max_hbar_s, summary.mean_hbar_s, summary.mean_entropy, summary.perplexity, summary.nll_bits]
    assert all(math.isfinite(v) for v in values if v is not None)
    assert (perplexity(1024.0), perplexity(math.inf), perplexity(3.0)) == (None, None, 8.0)


def test_the_verification_of_the_finished_entry_reaches_the_summary_across_a_restart() -> None:
    from services.common.contracts import Verification

    checked = Verification(
        samples=["Paris", "Lyon"], answer="Paris", temperature=1.0, exact=0.5, lexical=0.5, consistency=0.5
    )
    e = engine()
    st = SessionState("s1")
    out = e.accept(st, audit(0), 0.0)
    out += e.end(st, "finished", 2, 0.0, checked)  # one audit still missing: the summary waits
    assert not [o for o in out if o.type == "summary"]
    st = state.load("s1", state.dump(st))
    out = e.accept(st, audit(1), 0.0)
    summary = out[-1]
    assert summary.type == "summary" and summary.verification == checked
    plain = SessionState("s2")
    e.accept(plain, audit(0, session_id="s2"), 0.0)
    assert e.end(plain, "finished", 1, 0.0)[-1].verification is None  # type: ignore[union-attr]

"""The risk level of a calibrated model: evidence (the answer's P(wrong), the session against the
reference sessions, loops), each change with a sentence naming it; peak and final both kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.alerter import profile
from services.alerter.engine import AlerterOutput, RulesEngine
from services.alerter.risk import RiskState
from services.alerter.ruleset import load_rules
from services.alerter.session import SessionState
from services.common.contracts import AuditEvent, RiskEvent, ScoresEvent, SummaryEvent
from tests.alerter.factory import audit, settings

MODEL = "calibrated-test-model"


def write_profile(folder: Path) -> Path:
    """P(wrong) = the logistic of (answer G-NLL − 6 bits), no isotonic bend; reference sessions whose mean
    surprisal runs from 1 to 3 bits (percentiles 0 … 100)."""
    raw = {
        "format": 1,
        "id": f"{MODEL}/test",
        "model": MODEL,
        "aliases": [],
        "token_quantiles": {"hbar_s": {"0.9": 100.0, "0.99": 100.0}, "prob": {"0.01": 0.0}},
        "session_quantiles": {
            "all.mean_nll": {"0": 1.0, "0.5": 2.0, "0.9": 2.8, "0.99": 2.98, "0.999": 2.998, "1": 3.0}
        },
        "p_wrong": {
            "features": ["answer.gnll"],
            "fill": [50.0],
            "mean": [6.0],
            "scale": [1.0],
            "coef": [1.0],
            "intercept": 0.0,
            "iso_x": [0.0, 1.0],
            "iso_y": [0.0, 1.0],
            "max_answer_tokens": 8,
        },
        "risk_rates": {"safe": 0.9, "warning": 0.08, "critical": 0.015, "emergency": 0.005},
    }
    (folder / "p.json").write_text(json.dumps(raw))
    return folder


@pytest.fixture
def engine(tmp_path: Path) -> RulesEngine:
    s = settings(profiles_dir=str(write_profile(tmp_path)))
    return RulesEngine(load_rules(s), s)


def tok(seq: int, text: str, prob: float) -> AuditEvent:
    return audit(seq, text, prob=prob, hbar_s=0.5).model_copy(update={"model": MODEL})


def run(engine: RulesEngine, audits: list[AuditEvent]) -> tuple[list[RiskEvent], SummaryEvent]:
    st = SessionState("s1")
    out: list[AlerterOutput] = []
    for a in audits:
        out += engine.accept(st, a, 0.0)
    out += engine.end(st, "finished", len(audits), 0.0)
    risks = [o for o in out if isinstance(o, RiskEvent)]
    summary = out[-1]
    assert isinstance(summary, SummaryEvent)
    assert [o.seq for o in out] == list(range(len(out)))  # risk changes before the summary, in order
    return risks, summary


def test_a_confident_answer_is_judged_safe_once_complete(engine: RulesEngine) -> None:
    risks, summary = run(engine, [tok(0, " Paris", 0.9), tok(1, ".", 0.9), tok(2, " It", 0.5)])
    assert risks == []  # judged safe: nothing changes
    assert (summary.final_risk, summary.peak_risk, summary.profile) == ("safe", "safe", f"{MODEL}/test")
    assert summary.p_wrong is not None and summary.p_wrong < 0.01


def test_an_unlikely_answer_names_its_p_wrong(engine: RulesEngine) -> None:
    # answer " Lyon." at 2^-4 and 2^-4: G-NLL 8 bits → P(wrong) = logistic(2) = 0.88 → critical band
    risks, summary = run(engine, [tok(0, " Lyon", 1 / 16), tok(1, ".", 1 / 16), tok(2, " It", 0.9)])
    assert [(r.previous, r.level, r.token_seq, r.evidence) for r in risks] == [("safe", "critical", 1, "answer")]
    assert risks[0].p_wrong == pytest.approx(0.8808, abs=1e-3) and risks[0].profile == f"{MODEL}/test"
    assert risks[0].reason == (
        f"P(wrong) = 0.88 for the answer (2 tokens; calibrated on labelled QA, profile {MODEL}/test): "
        "in the critical band (≥ 0.80)"
    )
    assert (summary.final_risk, summary.peak_risk) == ("critical", "critical")
    assert summary.p_wrong == pytest.approx(risks[0].p_wrong)


def test_an_answer_never_completed_is_judged_at_the_end(engine: RulesEngine) -> None:
    risks, summary = run(engine, [tok(i, f" w{i}", 0.25) for i in range(4)])  # 8 bits, no sentence end
    assert [(r.level, r.token_seq, r.evidence) for r in risks] == [("critical", 3, "answer")]
    assert summary.final_risk == "critical"


def test_an_answer_longer_than_any_calibrated_one_gets_no_p_wrong(engine: RulesEngine) -> None:
    # nine unlikely tokens before the first sentence ends: beyond the 8 the map was fitted on
    risks, summary = run(engine, [tok(i, f" w{i}", 0.25) for i in range(9)] + [tok(9, ".", 0.25)])
    assert risks == []  # opening prose is judged against the reference sessions, not as a short answer
    assert summary.p_wrong is None and summary.profile == f"{MODEL}/test"


def test_a_loop_never_reads_safe_and_the_fall_says_why(engine: RulesEngine) -> None:
    loop = [" the", " statue", " of"] * 6
    audits = [tok(0, " Yes", 0.99), tok(1, ".", 0.99)]
    audits += [tok(2 + i, t, 0.99) for i, t in enumerate(loop)]
    audits += [tok(20 + i, f" w{i}", 0.99) for i in range(40)]
    risks, summary = run(engine, audits)
    assert [(r.previous, r.level, r.evidence) for r in risks] == [
        ("safe", "warning", "loop"),
        ("warning", "safe", "loop"),
    ]
    up, down = risks
    assert up.reason.startswith("the text loops (REPETITION on 1 of the last")
    assert down.reason.startswith("the text stopped looping (no REPETITION in the last 32 tokens); P(wrong) = 0.01")
    assert down.token_seq - 19 == 32  # the last loop token was #19
    assert (summary.final_risk, summary.peak_risk) == ("safe", "warning")


def test_a_session_far_from_the_reference_ones_is_judged_from_its_32nd_token(engine: RulesEngine) -> None:
    # a sure answer, then 40 tokens at 2^-4: mean surprisal climbs past the reference's 99th percentile
    audits = [tok(0, " Yes", 0.99), tok(1, ".", 0.99)] + [tok(2 + i, f" w{i}", 1 / 16) for i in range(40)]
    risks, summary = run(engine, audits)
    assert [(r.level, r.token_seq, r.evidence) for r in risks] == [("emergency", 31, "session")]
    assert "over 32 tokens is above every one of the model's reference sessions" in risks[0].reason
    assert risks[0].reason.endswith("in the emergency band (≥ 99.9th percentile)")
    assert (summary.final_risk, summary.peak_risk) == ("emergency", "emergency")


def test_an_uncalibrated_model_runs_on_the_rules(engine: RulesEngine) -> None:
    audits = [audit(i, f" w{i}", prob=0.1, hbar_s=3.0) for i in range(6)]  # model "test-model": no profile
    risks, summary = run(engine, audits)
    assert risks and all(r.evidence == "rules" and r.profile is None for r in risks)
    assert summary.profile is None and summary.p_wrong is None


def test_live_scores_come_when_the_answer_is_complete_and_every_n_tokens(tmp_path: Path) -> None:
    s = settings(profiles_dir=str(write_profile(tmp_path)), scores_every=4)
    e = RulesEngine(load_rules(s), s)
    st = SessionState("s1")
    out: list[AlerterOutput] = []
    for a in [tok(0, " Lyon", 1 / 16), tok(1, ".", 1 / 16)] + [tok(i, f" w{i}", 0.9) for i in range(2, 9)]:
        out += e.accept(st, a, 0.0)
    scores = [o for o in out if isinstance(o, ScoresEvent)]
    assert [(o.tokens, o.answer_complete) for o in scores] == [(2, True), (4, True), (8, True)]
    first = scores[0]
    assert first.p_wrong == pytest.approx(0.8808, abs=1e-3) and first.profile == f"{MODEL}/test"
    assert first.answer_scores is not None and first.answer_scores.gnll == pytest.approx(8.0)
    assert first.scores is not None and first.scores.tokens == 2


def test_state_with_evidence_round_trips() -> None:
    state = RiskState("critical", 0, 5, [], "critical", {"answer": ["critical", "why", 2, 0.9]}, 3)
    assert RiskState.from_json(json.loads(json.dumps(state.to_json()))) == state
    assert RiskState.from_json(["warning", 2, 3, [[3, 2, "A"]]]).evidence == {}  # state from before evidence


def test_percentile_inverts_the_reference_quantiles(tmp_path: Path) -> None:
    p = profile.load(write_profile(tmp_path) / "p.json")
    assert p.percentile("all.mean_nll", 0.5) == 0.0
    assert p.percentile("all.mean_nll", 2.0) == pytest.approx(0.5)
    assert p.percentile("all.mean_nll", 2.4) == pytest.approx(0.7)
    assert p.percentile("all.mean_nll", 3.0) == 1.0
    assert p.percentile("all.mean_nll", 9.0) == 1.0
    assert p.percentile("other", 1.0) is None
    assert p.risk_rates["safe"] == 0.9

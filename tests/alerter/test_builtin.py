from __future__ import annotations

import pytest

from services.alerter.builtin import Anomaly, HighUncertainty, LowConfidence, UncertaintySpike
from tests.alerter.factory import audit


def test_low_confidence_message_reads_at_a_glance() -> None:
    rule = LowConfidence(0.3)
    finding = rule.check(audit(7, " Paris", prob=0.12), {})
    assert finding is not None
    assert finding.message == 'token " Paris" (#7): p = 0.12 below 0.30'
    assert finding.values == {"prob": 0.12, "threshold": 0.3}
    assert rule.check(audit(8, prob=0.3), {}) is None  # strictly below
    assert rule.check(audit(9, prob=None), {}) is None  # not computable: never fires


def test_high_uncertainty_threshold_is_strict() -> None:
    rule = HighUncertainty(2.5)
    assert rule.check(audit(0, hbar_s=2.5), {}) is None
    finding = rule.check(audit(3, "\n", hbar_s=2.51), {})
    assert finding is not None
    assert finding.message == 'token "\\n" (#3): ℏₛ = 2.51 above 2.50'
    assert rule.check(audit(4, hbar_s=None), {}) is None


def test_spike_against_ewma_baseline() -> None:
    rule = UncertaintySpike(factor=1.5, floor=0.2, alpha=0.5, warmup=2)
    state: dict[str, float] = {}
    assert rule.check(audit(0, hbar_s=1.0), state) is None
    assert rule.check(audit(1, hbar_s=1.0), state) is None
    assert state == {"n": 2, "b": 1.0}
    finding = rule.check(audit(2, hbar_s=1.6), state)  # 1.6 > 1.5 × 1.0
    assert finding is not None
    assert finding.values == {"hbar_s": 1.6, "baseline": 1.0}
    assert state["b"] == pytest.approx(1.3)  # 0.5 × 1.6 + 0.5 × 1.0
    assert rule.check(audit(3, hbar_s=1.9), state) is None  # 1.9 < 1.5 × 1.3


def test_spike_floor_ignores_noise_on_a_near_zero_baseline() -> None:
    rule = UncertaintySpike(factor=1.5, floor=1.0, alpha=0.2, warmup=1)
    state: dict[str, float] = {}
    for seq in range(5):
        rule.check(audit(seq, hbar_s=0.01), state)
    assert rule.check(audit(5, hbar_s=0.9), state) is None  # 90× the baseline, but below 1.5 × floor
    assert rule.check(audit(6, hbar_s=1.6), state) is not None


def test_spike_waits_for_warmup() -> None:
    rule = UncertaintySpike(factor=1.5, floor=0.1, alpha=0.2, warmup=3)
    state: dict[str, float] = {}
    assert rule.check(audit(0, hbar_s=0.5), state) is None
    assert rule.check(audit(1, hbar_s=3.0), state) is None  # second token: still warming up


def test_anomaly_robust_z_score() -> None:
    rule = Anomaly("hbar_s", threshold=3.5, window=8, min_tokens=4, mad_floor=0.01)
    state: dict[str, list[int]] = {}
    for seq, h in enumerate([1.0, 1.2, 0.8, 1.1, 0.9]):
        assert rule.check(audit(seq, hbar_s=h), state) is None
    # history 1.0 1.2 0.8 1.1 0.9: median 1.0, |dev| 0 .2 .2 .1 .1 → MAD 0.1; z(1.6) = 0.6745·0.6/0.1 = 4.047
    finding = rule.check(audit(5, hbar_s=1.6), state)
    assert finding is not None
    assert finding.values["z"] == pytest.approx(4.047)
    assert finding.values["median"] == 1.0
    assert finding.values["mad"] == pytest.approx(0.1)
    assert "robust z = 4.0 above 3.5" in finding.message
    # z(1.5) with the outlier now in the history: median 1.05, MAD 0.15 → 2.02: no
    assert rule.check(audit(6, hbar_s=1.5), state) is None


def test_anomaly_window_is_bounded_and_low_values_do_not_fire() -> None:
    rule = Anomaly("hbar_s", threshold=3.5, window=4, min_tokens=3, mad_floor=0.1)
    state: dict[str, list[int]] = {}
    for seq in range(10):
        rule.check(audit(seq, hbar_s=1.0), state)
    assert state["w"] == [1_000_000] * 4  # millionths
    assert rule.check(audit(10, hbar_s=0.0), state) is None  # one-sided: a certain token is no alarm
    # history [1, 1, 1, 0]: median 1, MAD 0 → floor 0.1; z(1.5) = 0.6745·0.5/0.1 = 3.37, z(1.6) = 4.05
    assert rule.check(audit(11, hbar_s=1.5), state) is None
    state["w"] = [1_000_000, 1_000_000, 1_000_000, 0]
    assert rule.check(audit(12, hbar_s=1.6), state) is not None


def test_anomaly_refuses_an_unknown_metric() -> None:
    with pytest.raises(ValueError, match="hbar"):
        Anomaly("hbarr")


def test_repetition_fires_on_every_token_that_continues_a_loop() -> None:
    from services.alerter.builtin import Repetition

    rule = Repetition(n=3, repeats=3, window=48)
    state: dict[str, object] = {}
    texts = ["The", " statue"] + [" of", " the", " statue"] * 4
    fired = [i for i, t in enumerate(texts) if rule.check(audit(i, t), state) is not None]
    # " statue of the" completes its third occurrence at #9, " of the statue" at #10, " the statue of" at #11…
    assert fired == [9, 10, 11, 12, 13]
    finding = rule.check(audit(14, " of"), state)
    assert finding is not None and "loops" in finding.message and finding.values["repeats"] >= 3


def test_repetition_ignores_ordinary_text_and_whitespace() -> None:
    from services.alerter.builtin import Repetition

    rule = Repetition()
    state: dict[str, object] = {}
    words = [
        "The",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "the",
        "lazy",
        "dog",
        "and",
        "then",
        "the",
        "fox",
        "runs",
        "away",
        "into",
        "the",
        "woods",
    ]
    assert all(rule.check(audit(i, " " + w), state) is None for i, w in enumerate(words))
    spaces: dict[str, object] = {}
    assert all(rule.check(audit(i, " "), spaces) is None for i in range(20))

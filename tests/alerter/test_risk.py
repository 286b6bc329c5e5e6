from __future__ import annotations

from services.alerter.risk import RiskPolicy, RiskState, observe

POLICY = RiskPolicy(window=4, warning=4, critical=8, emergency=12, release=0.75)


def test_score_is_the_worst_severity_per_token_over_the_window() -> None:
    state = RiskState()
    assert observe(POLICY, state, [("A", "info"), ("B", "warning")]) is None  # max(1, 2) = 2
    assert state.score == 2
    change = observe(POLICY, state, [("B", "warning")])
    assert change is not None
    assert (change.previous, change.level) == ("safe", "warning")
    assert change.reason == "risk score 4 over the last 4 tokens reached the warning threshold 4 (B ×2, A ×1)"
    change = observe(POLICY, state, [("C", "critical")])
    assert change is not None and (change.previous, change.level) == ("warning", "critical")
    change = observe(POLICY, state, [("C", "critical")])  # 2 + 2 + 4 + 4 = 12: straight to emergency
    assert change is not None and (change.previous, change.level) == ("critical", "emergency")


def test_level_falls_only_below_release_threshold() -> None:
    state = RiskState()
    for _ in range(2):
        observe(POLICY, state, [("B", "warning")])
    assert state.level == "warning"
    assert observe(POLICY, state, []) is None  # score 4
    assert observe(POLICY, state, []) is None  # score 4 (window 4: nothing left it yet)
    change = observe(POLICY, state, [])  # first firing leaves: score 2 < 0.75 × 4
    assert change is not None
    assert (change.previous, change.level) == ("warning", "safe")
    assert change.reason.startswith("risk score 2 over the last 4 tokens fell below 3")


def test_hovering_at_a_threshold_does_not_flap() -> None:
    policy = RiskPolicy(window=3, warning=4, critical=100, emergency=200, release=0.5)
    state = RiskState()
    changes = []
    for severity in ["warning", "warning", None, "warning", None, "warning", None, "warning"]:
        change = observe(policy, state, [("B", severity)] if severity else [])  # type: ignore[list-item]
        if change:
            changes.append(change.level)
    assert changes == ["warning"]  # the score swings 2..4 and never drops below 2


def test_quiet_session_keeps_no_history_and_state_round_trips() -> None:
    state = RiskState()
    for _ in range(100):
        observe(POLICY, state, [])
    assert (state.recent, state.tokens) == ([], 100)
    observe(POLICY, state, [("A", "info"), ("B", "warning")])
    assert state.recent == [[101, 2, "A,B"]]
    assert RiskState.from_json(state.to_json()) == state

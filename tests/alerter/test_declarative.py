from __future__ import annotations

from pathlib import Path

import pytest

from services.alerter.declarative import load_rules_file
from services.alerter.errors import RulesFileError
from tests.alerter.factory import audit

QUANTUM_YAML = """
rules:
  - name: QUANTUM_UNCERTAINTY
    metric: hbar_s
    operator: ">"
    threshold: 3.0
    text_contains: quantum
    severity: critical
    message: "token {token} (#{seq}): ℏₛ = {value:.2f} above {threshold:.2f} in a quantum physics term"
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_quantum_rule_from_yaml(tmp_path: Path) -> None:
    (rule,) = load_rules_file(write(tmp_path, QUANTUM_YAML))
    assert (rule.name, rule.severity) == ("QUANTUM_UNCERTAINTY", "critical")
    finding = rule.check(audit(4, " Quantum", hbar_s=3.2), {})
    assert finding is not None
    assert finding.message == 'token " Quantum" (#4): ℏₛ = 3.20 above 3.00 in a quantum physics term'
    assert finding.values == {"hbar_s": 3.2, "value": 3.2}
    assert rule.check(audit(5, " quantum", hbar_s=3.0), {}) is None  # not above 3.0
    assert rule.check(audit(6, " classical", hbar_s=3.9), {}) is None  # no "quantum" in it


def test_the_shipped_example_file_loads() -> None:
    names = [r.name for r in load_rules_file(Path(__file__).parents[2] / "examples" / "rules.yaml")]
    assert names == ["QUANTUM_UNCERTAINTY", "SUSTAINED_LOW_CONFIDENCE", "UNSURE_NUMBER"]


def test_json_file_window_aggregate_and_default_message(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"rules": [{"name": "SUSTAINED_LOW", "metric": "prob", "window": 3, "aggregate": "mean",'
        ' "operator": "<", "threshold": 0.4}]}',
        "rules.json",
    )
    (rule,) = load_rules_file(path)
    state: dict[str, list[float]] = {}
    assert rule.check(audit(0, prob=0.2), state) is None  # window not full yet
    assert rule.check(audit(1, prob=0.3), state) is None
    finding = rule.check(audit(2, " y", prob=0.4), state)  # mean 0.3
    assert finding is not None
    assert finding.message == 'token " y" (#2): mean p over the last 3 tokens = 0.30 below 0.40'
    assert finding.severity is None and rule.severity == "warning"
    assert rule.check(audit(3, prob=0.9), state) is None  # mean 0.533
    assert state["w"] == [0.3, 0.4, 0.9]


def test_text_regex(tmp_path: Path) -> None:
    (rule,) = load_rules_file(
        write(
            tmp_path, 'rules: [{name: UNSURE_NUMBER, metric: prob, operator: "<", threshold: 0.5, text_regex: "\\\\d"}]'
        )
    )
    assert rule.check(audit(0, " 1989", prob=0.4), {}) is not None
    assert rule.check(audit(1, " year", prob=0.4), {}) is None


@pytest.mark.parametrize(
    ("text", "rule", "problem"),
    [
        ("rules: [{name: A, metric: hbar_s, operator: '>', threshold: [1}", None, "is not valid YAML"),
        ("- name: A", None, "must be a mapping with a list under 'rules:'"),
        ("rules: []\nextra: 1", None, "unknown top-level key(s) 'extra'"),
        ("rules: [{name: HIGH, metric: hbar_s, operator: '>'}]", "#1 (HIGH)", "threshold: is required"),
        ("rules: [{name: HIGH, metric: hbarr, operator: '>', threshold: 1}]", "#1 (HIGH)", "unknown metric 'hbarr'"),
        ("rules: [{name: HIGH, metric: prob, operator: '=>', threshold: 1}]", "#1 (HIGH)", "operator:"),
        ("rules: [{name: high, metric: prob, operator: '>', threshold: 1}]", "#1 (high)", "UPPER_SNAKE_CASE"),
        (
            "rules: [{name: A, metric: prob, operator: '>', threshold: 1, colour: red}]",
            "#1 (A)",
            "colour: unknown field",
        ),
        ("rules: [{name: A, metric: prob, operator: '>', threshold: 1, message: '{tokn}'}]", "#1 (A)", "{tokn}"),
        (
            "rules: [{name: A, metric: prob, operator: '>', threshold: 1, message: '{value:.2q}'}]",
            "#1 (A)",
            "cannot be formatted",
        ),
        (
            "rules: [{name: A, metric: prob, operator: '>', threshold: 1, text_regex: '('}]",
            "#1 (A)",
            "regular expression",
        ),
        ("rules: [{name: A, metric: prob, operator: '>', threshold: 1, severity: HIGH}]", "#1 (A)", "severity:"),
        ("rules: [{name: A, metric: prob, operator: '>', threshold: 1, window: 0}]", "#1 (A)", "window:"),
        (
            "rules: [{name: A, metric: prob, operator: '>', threshold: 1, text_contains: a, text_regex: b}]",
            "#1 (A)",
            "not both",
        ),
        (
            "rules:\n - {name: A, metric: prob, operator: '>', threshold: 1}\n - {name: A, metric: prob, operator: '<', threshold: 1}",
            "#2 (A)",
            "used twice",
        ),
        ("rules: [5]", "#1", "must be a mapping of fields"),
    ],
)
def test_broken_file_names_file_rule_and_problem(tmp_path: Path, text: str, rule: str | None, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RulesFileError) as info:
        load_rules_file(path)
    message = str(info.value)
    assert message.startswith(f"rules file {path}: ")
    assert info.value.rule == rule
    if rule:
        assert f"rule {rule}: " in message
    assert problem in message


def test_missing_file_and_wrong_extension(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError, match="cannot be read"):
        load_rules_file(tmp_path / "nope.yaml")
    with pytest.raises(RulesFileError, match=r"must end in \.yaml, \.yml or \.json"):
        load_rules_file(write(tmp_path, "rules: []", "rules.toml"))

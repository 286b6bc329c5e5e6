from __future__ import annotations

from pathlib import Path

import pytest

from examples.quantum_rule import QuantumUncertainty
from services.alerter.builtin import HighUncertainty
from services.alerter.errors import RuleLoadError, RulesFileError
from services.alerter.rules import load_rule
from services.alerter.ruleset import load_rules
from tests.alerter.factory import audit, settings


def test_quantum_rule_as_a_python_class() -> None:
    rule = load_rule("examples.quantum_rule:QuantumUncertainty", settings())
    assert isinstance(rule, QuantumUncertainty)
    finding = rule.check(audit(3, " quantum", hbar_s=3.4), {})
    assert finding is not None
    assert finding.message == 'token " quantum" (#3): ℏₛ = 3.40 above 3.00 in a quantum physics term'
    assert rule.check(audit(3, " quantum", hbar_s=2.9), {}) is None
    assert rule.check(audit(3, " photon", hbar_s=3.4), {}) is None


def test_builtins_load_by_dotted_path_with_their_settings() -> None:
    rule = load_rule("services.alerter.builtin.HighUncertainty", settings(high_uncertainty_threshold=1.0))
    assert isinstance(rule, HighUncertainty)
    assert rule.threshold == 1.0
    names = [r.name for r in load_rules(settings())]
    assert names == ["HIGH_UNCERTAINTY", "UNCERTAINTY_SPIKE", "LOW_CONFIDENCE", "ANOMALY", "REPETITION"]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("nowhere.rules:Rule", "cannot import module 'nowhere.rules'"),
        ("examples.quantum_rule:Missing", "has no attribute 'Missing'"),
        ("examples.quantum_rule:Finding", "is not a subclass of services.alerter.rules.Rule"),
        ("Rule", "not a dotted path"),
        ("services.alerter.rules:Rule", "name '' must be UPPER_SNAKE_CASE"),
    ],
)
def test_bad_python_rule_path(path: str, problem: str) -> None:
    with pytest.raises(RuleLoadError) as info:
        load_rule(path, settings())
    assert path in str(info.value)
    assert problem in str(info.value)


def test_names_must_be_unique_across_sources(tmp_path: Path) -> None:
    file = tmp_path / "rules.yaml"
    file.write_text("rules: [{name: QUANTUM_UNCERTAINTY, metric: hbar_s, operator: '>', threshold: 3}]")
    with pytest.raises(RulesFileError, match=r"already taken by examples\.quantum_rule:QuantumUncertainty"):
        load_rules(settings(python_rules=["examples.quantum_rule:QuantumUncertainty"], rules_file=str(file)))
    with pytest.raises(RuleLoadError, match="same name"):
        load_rules(settings(python_rules=["services.alerter.builtin:HighUncertainty"]))


def test_risk_thresholds_must_rise() -> None:
    with pytest.raises(ValueError, match=r"UQ_RISK_WARNING < UQ_RISK_CRITICAL < UQ_RISK_EMERGENCY \(got 4, 30, 24\)"):
        settings(risk_critical=30)


def test_bad_anomaly_metric_is_named_at_load() -> None:
    with pytest.raises(RuleLoadError, match="anomaly metric 'hbar' is not one of"):
        load_rules(settings(anomaly_metric="hbar"))

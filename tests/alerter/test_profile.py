"""Calibration profiles: parsing, P(wrong), relative thresholds of the built-in rules, the summary."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from services.alerter import profile
from services.alerter.builtin import HighUncertainty, LowConfidence
from services.alerter.engine import RulesEngine
from services.alerter.errors import ProfileError
from services.alerter.session import SessionState
from services.alerter.settings import AlerterSettings
from tests.alerter.factory import audit


def profile_json(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "format": 1,
        "id": "test-model/1",
        "model": "test-model",
        "aliases": ["tm"],
        "token_quantiles": {"hbar_s": {"0.5": 1.0, "0.99": 4.0}, "prob": {"0.01": 0.05, "0.5": 0.8}},
        "p_wrong": {
            "features": ["answer.gnll"],
            "fill": [10.0],
            "mean": [2.0],
            "scale": [1.0],
            "coef": [1.0],
            "intercept": 0.0,
            "iso_x": [0.1, 0.9],
            "iso_y": [0.2, 0.8],
        },
    }
    raw.update(over)
    return raw


@pytest.fixture
def profiles(tmp_path: Path) -> str:
    (tmp_path / "test.json").write_text(json.dumps(profile_json()), encoding="utf-8")
    profile.catalogue.cache_clear()
    yield str(tmp_path)
    profile.catalogue.cache_clear()


def test_p_wrong_is_logistic_then_isotonic(profiles: str) -> None:
    prof = profile.for_model("tm", profiles)
    assert prof is not None and prof.p_wrong is not None
    # gnll 2 → z 0 → raw 0.5 → halfway between the knots (0.1, 0.2) and (0.9, 0.8): 0.5
    assert prof.p_wrong({"answer.gnll": 2.0}) == pytest.approx(0.5)
    assert prof.p_wrong.raw({"answer.gnll": 3.0}) == pytest.approx(1 / (1 + math.exp(-1)))
    assert prof.p_wrong({"answer.gnll": 50.0}) == 0.8  # flat beyond the last knot
    assert prof.p_wrong({}) == prof.p_wrong({"answer.gnll": 10.0})  # missing → the fill value


def test_quantiles_interpolate(profiles: str) -> None:
    prof = profile.for_model("test-model", profiles)
    assert prof is not None
    assert prof.quantile("hbar_s", 0.99) == 4.0
    assert prof.quantile("hbar_s", 0.745) == pytest.approx(2.5)
    assert prof.quantile("varentropy", 0.5) is None
    assert profile.for_model("other", profiles) is None


@pytest.mark.parametrize(
    ("over", "says"),
    [
        ({"format": 9}, "format 9"),
        ({"token_quantiles": []}, "not a calibration profile"),
        ({"p_wrong": {**profile_json()["p_wrong"], "coef": [1.0, 2.0]}}, "differ in length"),
    ],
)
def test_a_broken_profile_says_which_file_and_why(tmp_path: Path, over: dict[str, Any], says: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(profile_json(**over)), encoding="utf-8")
    with pytest.raises(ProfileError, match=says) as err:
        profile.load(path)
    assert str(path) in str(err.value)


def test_rules_use_the_models_percentiles_with_a_profile_and_fixed_thresholds_without(profiles: str) -> None:
    relative = HighUncertainty(2.5, quantile=0.99, profiles_dir=profiles)
    assert relative.check(audit(1, hbar_s=3.0), {}) is None  # above 2.5 but below test-model's 99th percentile 4.0
    finding = relative.check(audit(2, hbar_s=4.5), {})
    assert finding is not None and "this model's 99th percentile" in finding.message
    assert finding.values["threshold"] == 4.0
    absolute = HighUncertainty(2.5)
    assert absolute.check(audit(1, hbar_s=3.0), {}) is not None
    low = LowConfidence(0.3, quantile=0.01, profiles_dir=profiles)
    assert low.check(audit(1, prob=0.1), {}) is None  # below 0.3, above the model's 1st percentile 0.05
    found = low.check(audit(2, prob=0.01), {})
    assert found is not None and "1st percentile" in found.message


def test_summary_carries_p_wrong_and_the_profile(profiles: str) -> None:
    settings = AlerterSettings(profiles_dir=profiles)
    engine = RulesEngine([], settings)
    st = SessionState("s1")
    for seq, prob in enumerate((0.5, 0.5)):  # 1 bit each: gnll 2 → P(wrong) 0.5
        engine.accept(st, audit(seq, " Paris" if seq == 0 else "\n", prob=prob), 0.0)
    (summary,) = engine.end(st, "finished", 2, 0.0)
    assert summary.type == "summary"
    assert summary.profile == "test-model/1"
    assert summary.p_wrong == pytest.approx(0.5)
    assert summary.answer_scores is not None and summary.answer_scores.gnll == pytest.approx(2.0)


def test_without_a_profile_the_summary_says_uncalibrated() -> None:
    engine = RulesEngine([], AlerterSettings())
    st = SessionState("s1")
    engine.accept(st, audit(0, prob=0.5), 0.0)
    (summary,) = engine.end(st, "finished", 1, 0.0)
    assert summary.profile is None and summary.p_wrong is None

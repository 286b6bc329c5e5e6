"""The hidden-state probe: what the engine publishes live for each token is what calibration fits on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from services.alerter import profile
from services.alerter.scores import SpanStats
from services.common.contracts import Metrics, SamplingParams
from services.evaluation import qa

MODEL = "SmolLM2-135M-Instruct"


def test_the_span_score_is_the_mean_projection() -> None:
    span = SpanStats()
    for value in (1.0, None, 3.0):
        span.add(Metrics(exact=True, surprisal=1.0, probe=value))
    assert span.scores()["probe"] == 2.0
    assert SpanStats.from_json(span.to_json()) == span
    old = span.to_json()[:14]  # state persisted before the probe was kept
    assert SpanStats.from_json(old).scores()["probe"] is None


def test_a_profile_reads_its_probe(tmp_path: Path) -> None:
    raw = json.loads((profile.BUILTIN_DIR / f"{MODEL}.json").read_text())
    raw["probe"] = {"layer": 3, "weights": [0.5, -1.0], "intercept": 0.25}
    (tmp_path / "p.json").write_text(json.dumps(raw))
    spec = profile.load(tmp_path / "p.json").probe
    assert spec is not None and (spec.layer, spec.weights, spec.intercept) == (3, (0.5, -1.0), 0.25)


@pytest.mark.slow
@pytest.mark.model
def test_live_projections_equal_the_teacher_forced_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A random probe direction: the engine's per-token projections, averaged over the answer, equal
    ``w · mean(h)`` from a forward pass over the prompt and the recorded answer (what calibration fits)."""
    from services.evaluation.pipeline import LocalPipeline
    from services.evaluation.probe import HiddenStates, default_layer

    states = HiddenStates()
    hidden = int(states.lm.model.config.hidden_size)
    layer = default_layer(states.layers)
    w = np.random.default_rng(0).normal(size=hidden) / np.sqrt(hidden)
    raw = json.loads((profile.BUILTIN_DIR / f"{MODEL}.json").read_text())
    raw["id"] = f"{MODEL}/probe-test"
    raw["probe"] = {"layer": layer, "weights": w.tolist(), "intercept": 0.0}
    (tmp_path / "p.json").write_text(json.dumps(raw))
    monkeypatch.setenv("UQ_PROFILES_DIR", str(tmp_path))
    pipeline = LocalPipeline()
    try:
        item = qa.load_items([{"question": "what is the capital of france", "answer": ["Paris"]}])[0]
        request = qa.request(item, "chat")
        run = pipeline.run(request, SamplingParams(temperature=0.0, max_tokens=12))
    finally:
        pipeline.close()
    assert run.summary is not None and run.summary["profile"] == f"{MODEL}/probe-test"
    probes = [a["metrics"]["probe"] for a in run.audits]
    assert all(isinstance(p, float) for p in probes)
    n = run.summary["answer_scores"]["tokens"]
    assert run.summary["answer_scores"]["probe"] == pytest.approx(float(np.mean(probes[:n])), rel=1e-6)
    row = {
        "id": "1",
        "question": item.question,
        "answers": list(item.answers),
        "summary": run.summary,
        "tokens": [{"text": a["text"], "token_id": a["token_id"]} for a in run.audits],
    }
    offline = float(states.answer_mean(row, "chat", layer) @ w)
    assert offline == pytest.approx(run.summary["answer_scores"]["probe"], abs=1e-3)

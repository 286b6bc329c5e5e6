"""``uq eval`` and ``uq calibrate`` end to end: the embedded model, in-process and through the running system."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.alerter.profile import for_model as load_profile_for
from services.alerter.profile import load as load_profile
from services.common.contracts import SamplingParams
from services.evaluation import qa
from services.evaluation.calibrate import session_features
from services.evaluation.pipeline import ApiPipeline, LocalPipeline
from services.evaluation.replay import Replayer
from tests.stack import ROOT, Stack

pytestmark = [pytest.mark.slow, pytest.mark.model]

QUESTIONS = [
    {"question": "what is the capital of france", "answer": ["Paris"]},
    {"question": "who wrote hamlet", "answer": ["Shakespeare"]},
    {"question": "what is the capital of jamaica", "answer": ["Kingston"]},
]


@pytest.fixture(scope="module")
def qa_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("qa") / "tiny-dev.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack() as s:
        yield s


def close(a: object, b: object) -> bool:
    """Equal, numbers within 1e-4 relative (the API path's JSON round trip), dicts key by key."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-4, abs=1e-9)
    return a == b


def uq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "uq"), *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_uq_eval_local_writes_the_report_and_resumes(qa_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = uq("eval", str(qa_file), "--local", "--out", str(out), "--limit", "2")
    assert done.returncode == 0, done.stderr
    assert "2 items · accuracy" in done.stdout
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [r["id"] for r in runs] == ["1", "2"]
    assert runs[0]["correct"] is qa.is_correct(runs[0]["text"], ["Paris"])
    assert runs[0]["summary"]["answer_scores"]["gnll"] == pytest.approx(
        sum(t["surprisal"] for t in runs[0]["tokens"][: runs[0]["summary"]["answer_scores"]["tokens"]]), rel=1e-4
    )
    again = uq("eval", str(qa_file), "--local", "--out", str(out))  # only the third item is new
    assert again.returncode == 0, again.stderr
    assert len((out / "runs.jsonl").read_text().splitlines()) == 3
    report = json.loads((out / "report.json").read_text())
    assert report["items"] == 3
    assert set(report["scores"]) >= {"answer.gnll", "answer.mean_entropy", "answer.max_hbar_s", "risk.peak"}
    for plot in ("roc.png", "rejection.png", "reliability.png"):
        assert (out / plot).stat().st_size > 1000
    assert "| score | AUROC | PRR | AUPRC |" in (out / "report.md").read_text()
    assert "## Risk levels of the sessions" in (out / "report.md").read_text()
    # replaying the recorded tokens through the alerter's engine gives what the run recorded
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    with Replayer() as replayer:
        replayed = replayer.rows(runs, "SmolLM2-135M-Instruct")
    for run, again in zip(runs, replayed, strict=True):
        for key in ("answer_scores", "final_risk", "peak_risk", "p_wrong", "profile", "firings_by_rule"):
            assert close(run["summary"][key], again["summary"][key]), key
        assert [r["level"] for r in run["risks"]] == [r["level"] for r in again["risks"]]


def test_uq_eval_on_prompts_without_answers_reports_the_risk_levels(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "The capital of France is"}\n{"prompt": "Explain AI"}\n')
    out = tmp_path / "open"
    done = uq("eval", str(prompts), "--local", "--style", "plain", "--max-tokens", "8", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 prompts (no reference answers) · peak risk safe" in done.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["labelled"] == 0 and report["scores"] == {}
    shares = report["risk_levels"]["shares"]["peak"]
    assert sum(shares.values()) == pytest.approx(1.0)
    shipped = load_profile_for("SmolLM2-135M-Instruct")
    assert shipped is not None and report["risk_levels"]["documented"] == shipped.risk_rates
    assert "| level | final | peak | documented (peak) | peak ÷ documented |" in (out / "report.md").read_text()


def test_uq_eval_refuses_to_mix_settings_into_a_folder(qa_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert uq("eval", str(qa_file), "--local", "--out", str(out), "--limit", "1").returncode == 0
    mixed = uq("eval", str(qa_file), "--local", "--out", str(out), "--style", "chat", "--limit", "1")
    assert mixed.returncode == 2
    assert "holds a run with other settings (style: 'fewshot')" in mixed.stderr


def test_the_api_and_the_in_process_pipeline_give_the_same_sessions(stack: Stack) -> None:
    """The in-process mode is the product's own code: same text, same scores, same alerts, the same
    verification samples (seeded)."""
    api = ApiPipeline(stack.url)
    local = LocalPipeline()
    try:
        for item in qa.load_items(QUESTIONS[:2]):
            request = qa.request(item, "fewshot")
            sampling = SamplingParams(temperature=0.0, max_tokens=12, stop=request.stop, seed=5)
            a, b = api.run(request, sampling, verify=2), local.run(request, sampling, verify=2)
            assert a.text == b.text and a.text
            assert a.summary is not None and b.summary is not None
            assert a.summary["verification"] is not None and len(a.summary["verification"]["samples"]) == 2
            keys = ("answer_scores", "scores", "firings_by_rule", "final_risk", "peak_risk", "p_wrong", "profile")
            for key in (*keys, "verification"):
                assert close(a.summary[key], b.summary[key]), (key, a.summary[key], b.summary[key])
            assert [x["rule"] for x in a.alerts] == [x["rule"] for x in b.alerts]
    finally:
        api.close()
        local.close()


def test_uq_calibrate_fits_a_profile_the_alerter_reads(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "The weather today is"}\n{"prompt": "Write a haiku about rain."}\n')
    labelled = tmp_path / "dev-run"
    labelled.mkdir()
    (labelled / "config.json").write_text(json.dumps({"data": "x-dev.jsonl", "style": "fewshot"}))
    rows = []
    for i in range(40):  # synthetic labelled sessions: wrong answers are the uncertain ones
        nll = 0.2 + (i % 20) * 0.4
        rows.append(
            {
                "id": str(i),
                "correct": i % 20 < 8,
                "tokens": [{"text": " a", "surprisal": nll, "entropy": nll, "margin": 0.5}],
            }
        )
    (labelled / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "profile.json"
    reference = tmp_path / "reference"
    args = (
        "calibrate", "--out", str(out), "--reference-prompts", str(prompts), "--labelled", str(labelled),
        "--seeds", "1", "--max-tokens", "6", "--model", "embedded", "--reference-runs", str(reference),
    )  # fmt: skip
    done = uq(*args)
    assert done.returncode == 0, done.stderr
    assert "peak risk of the reference sessions: safe" in done.stdout
    kept = (reference / "reference.jsonl").read_text()
    assert len(kept.splitlines()) == 2  # two prompts × one seed, kept for the next fit
    prof = load_profile(out)
    assert sum(prof.risk_rates.values()) == pytest.approx(1.0)
    again = uq(*args)  # reuses the kept generations: the same reference, the same quantiles
    assert again.returncode == 0, again.stderr
    assert (reference / "reference.jsonl").read_text() == kept
    assert load_profile(out).token_quantiles == prof.token_quantiles
    assert prof.model == "SmolLM2-135M-Instruct" and prof.p_wrong is not None
    assert prof.quantile("hbar_s", 0.99) is not None
    low = prof.p_wrong(session_features([{"text": " a", "surprisal": 0.2, "entropy": 0.2, "margin": 0.5}]))
    high = prof.p_wrong(session_features([{"text": " a", "surprisal": 7.8, "entropy": 7.8, "margin": 0.5}]))
    assert low < high
    (labelled / "config.json").write_text(json.dumps({"data": "x-test.jsonl"}))
    refused = uq(
        "calibrate",
        "--out",
        str(out),
        "--reference-prompts",
        str(prompts),
        "--labelled",
        str(labelled),
        "--seeds",
        "1",
        "--max-tokens",
        "2",
    )
    assert refused.returncode == 2 and "fit on dev splits" in refused.stderr

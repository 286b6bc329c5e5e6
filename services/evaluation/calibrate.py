"""``uq calibrate``: fit a model's calibration profile (format in services/alerter/profile.py).

Two parts, each from the model's own generations:
- **reference**: the model generates for an ordinary prompt corpus (in-process, the services' own
  engine and auditor; several seeds at the given temperature); the quantiles of every token metric
  over those tokens become the profile's ``token_quantiles``;
  The same sessions give ``session_quantiles`` (how unusual a whole session is for this model) and,
  replayed through the alerter's engine with the new profile, ``risk_rates``: the share of ordinary
  sessions at each risk level, which docs/alerts.md promises;
- **labelled** (optional): ``uq eval`` run folders on QA *dev* splits. A logistic regression over the
  answer span's sequence scores (standardised, plus log(1 + G-NLL)) predicts "wrong"; its 5-fold
  out-of-fold predictions are recalibrated by isotonic regression to the observed share of wrong
  answers; the final logistic model is refitted on all of them. Each folder weighs the same in the
  fit, whatever its size, so a large hard set does not drown the calibration of an easier one. Runs
  of a file whose name says ``test`` are refused: reports are made on test splits, never fits.

The reference generations are kept in a folder (``reference.jsonl`` and ``config.json``) and reused
when the settings match, so refitting P(wrong) does not generate them again.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from services.alerter.profile import PROFILE_FORMAT, parse
from services.alerter.scores import SequenceStats, features
from services.common.contracts import Metrics, SamplingParams
from services.evaluation.qa import Request
from services.evaluation.runner import records

QUANTILES = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
SESSION_QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.999, 1.0)
#: Session scores whose reference distribution the profile keeps (the risk level's session evidence).
SESSION_SCORES = ("all.mean_nll",)
REFERENCE = "reference.jsonl"
TOKEN_METRICS = ("prob", "surprisal", "entropy", "margin", "hbar_s", "fisher_trace", "varentropy")
#: Features of the P(wrong) model: the answer span's scores (services/alerter/scores.py).
P_WRONG_FEATURES = (
    "answer.gnll",
    "log1p:answer.gnll",
    "answer.mean_nll",
    "answer.max_nll",
    "answer.first_nll",
    "answer.mean_entropy",
    "answer.max_entropy",
    "answer.first_entropy",
    "answer.min_margin_gap",
    "answer.first_margin_gap",
    "answer.tokens",
)


class CalibrationError(ValueError):
    """The inputs cannot make a profile; the message says why."""


def session_features(tokens: list[dict[str, Any]]) -> dict[str, float | None]:
    """The sequence-score features of a recorded session, computed by the alerter's own class."""
    stats = SequenceStats()
    for t in tokens:
        stats.add(t["text"], Metrics(exact=True, **{k: v for k, v in t.items() if k in Metrics.model_fields}))
    return features(stats)


def generate_reference(
    prompts: list[str],
    *,
    model: str | None,
    seeds: int,
    temperature: float,
    max_tokens: int,
    progress: Callable[[int, int], None] | None = None,
    folder: Path | None = None,
) -> tuple[str, list[list[dict[str, Any]]]]:
    """(model name, per session its tokens' metrics) for every prompt × seed, in-process; kept in
    ``folder`` and read back from it when it holds a run of the same settings."""
    from services.evaluation.pipeline import LocalPipeline

    settings = {
        "prompts": prompts,
        "model": model,
        "seeds": seeds,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    if folder is not None and (folder / REFERENCE).is_file() and (folder / "config.json").is_file():
        kept = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if {k: kept.get(k) for k in settings} == settings:
            lines = (folder / REFERENCE).read_text(encoding="utf-8").splitlines()
            return str(kept["model_name"]), [json.loads(line) for line in lines if line.strip()]
    pipeline = LocalPipeline(model)
    sessions = []
    try:
        total = len(prompts) * seeds
        for i, prompt in enumerate(prompts):
            for seed in range(seeds):
                sampling = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
                run = pipeline.run(Request(prompt, None, []), sampling)
                sessions.append(
                    [{"text": a["text"], "token_id": a.get("token_id"), **a["metrics"]} for a in run.audits]
                )
                if progress is not None:
                    progress(i * seeds + seed + 1, total)
    finally:
        pipeline.close()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / REFERENCE).write_text("".join(json.dumps(s) + "\n" for s in sessions), encoding="utf-8")
        (folder / "config.json").write_text(
            json.dumps({**settings, "model_name": pipeline.model}, indent=1) + "\n", encoding="utf-8"
        )
    return pipeline.model, sessions


def session_quantiles(sessions: list[list[dict[str, Any]]], min_tokens: int) -> dict[str, dict[str, float]]:
    """Quantiles of each session score over the reference sessions long enough to be judged."""
    feats = [session_features(s) for s in sessions if len(s) >= min_tokens]
    out: dict[str, dict[str, float]] = {}
    for name in SESSION_SCORES:
        values = np.array([f[name] for f in feats if f.get(name) is not None])
        if len(values):
            out[name] = {f"{q:g}": float(np.quantile(values, q)) for q in SESSION_QUANTILES}
    return out


def risk_rates(profile: dict[str, Any], sessions: list[list[dict[str, Any]]]) -> dict[str, float]:
    """The share of ``sessions`` whose peak risk reaches each level under ``profile`` (the alerter's
    engine and rules at the current settings, replayed over the recorded tokens)."""
    from services.evaluation.replay import Replayer

    peaks = []
    with Replayer(profile) as replayer:
        for i, tokens in enumerate(sessions):
            summary = replayer.rows([{"id": f"reference-{i}", "tokens": tokens}], profile["model"])[0]["summary"]
            peaks.append(summary["peak_risk"] if summary else "safe")
    return {level: peaks.count(level) / len(peaks) for level in ("safe", "warning", "critical", "emergency")}


def token_quantiles(sessions: list[list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for metric in TOKEN_METRICS:
        values = np.array(
            [t[metric] for s in sessions for t in s if t.get(metric) is not None and math.isfinite(t[metric])]
        )
        if len(values):
            out[metric] = {f"{q:g}": float(np.quantile(values, q)) for q in QUANTILES}
    return out


def _value(f: dict[str, float | None], name: str) -> float | None:
    if name.startswith("log1p:"):
        v = f.get(name[6:])
        return math.log1p(v) if v is not None else None
    return f.get(name)


def check_labelled(folders: list[Path]) -> None:
    """Refuse folders that are not ``uq eval`` runs, or are runs of a test split (before any work)."""
    for folder in folders:
        path = folder / "config.json"
        if not path.is_file():
            raise CalibrationError(f"{folder} is not a `uq eval` output folder (no config.json)")
        data = str(json.loads(path.read_text(encoding="utf-8")).get("data", ""))
        if "test" in Path(data).name.lower():
            raise CalibrationError(f"{folder} holds runs of {data}: fit on dev splits, report on test ones")


def labelled_rows(folders: list[Path]) -> tuple[list[tuple[str, dict[str, Any]]], list[float]]:
    """(``"<folder>/<id>"``, run record) of every labelled folder, and each row's weight: every folder
    weighs the same in total, whatever its size (mean weight 1)."""
    rows: list[tuple[str, dict[str, Any]]] = []
    weights: list[float] = []
    for folder in folders:
        these = list(records(folder))
        rows += [(f"{folder}/{r['id']}", r) for r in these]
        weights += [1.0 / len(these)] * len(these) if these else []
    total = sum(weights) or 1.0
    return rows, [w * len(weights) / total for w in weights]


def fit_p_wrong(folders: list[Path], probe: dict[str, float] | None = None) -> dict[str, Any]:
    """The ``p_wrong`` section from labelled ``uq eval`` folders (dev splits only); with ``probe`` (each
    row's out-of-fold probe projection by ``"<folder>/<id>"``) the answer's probe is a feature too, its
    missing value (an engine that cannot publish it) the mean, so it then weighs nothing."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    check_labelled(folders)
    keyed, weights = labelled_rows(folders)
    rows = [r for _, r in keyed]
    sources = []
    for folder in folders:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        n = sum(1 for k, _ in keyed if k.startswith(f"{folder}/"))
        sources.append({"data": config.get("data"), "style": config.get("style"), "items": n})
    wrong = np.array([0 if r["correct"] else 1 for r in rows])
    if wrong.min() == wrong.max() or min(wrong.sum(), len(wrong) - wrong.sum()) < 10:
        raise CalibrationError("the labelled runs need at least 10 right and 10 wrong answers")
    feats = [session_features(r["tokens"]) for r in rows]
    names = list(P_WRONG_FEATURES)
    if probe is not None:
        names.append("answer.probe")
        for (key, _), f in zip(keyed, feats, strict=True):
            f["answer.probe"] = probe.get(key)
    raw = np.array([[_value(f, n) for n in names] for f in feats], dtype=np.float64)
    fill = np.array(
        [
            (np.nanmean(col) if name == "answer.probe" else np.nanquantile(col, 0.99))
            if np.isfinite(col).any()
            else 0.0
            for name, col in zip(names, raw.T, strict=True)
        ]
    )
    x = np.where(np.isnan(raw), fill, raw)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    w = np.array(weights)
    lr = LogisticRegression(C=1.0, max_iter=5000)
    out_of_fold = cross_val_predict(
        lr,
        z,
        wrong,
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
        method="predict_proba",
        params={"sample_weight": w},
    )[:, 1]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(out_of_fold, wrong, sample_weight=w)
    lr.fit(z, wrong, sample_weight=w)
    return {
        "features": names,
        "fill": fill.tolist(),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": lr.coef_[0].tolist(),
        "intercept": float(lr.intercept_[0]),
        "iso_x": [float(v) for v in iso.X_thresholds_],
        "iso_y": [float(v) for v in iso.y_thresholds_],
        "max_answer_tokens": int(max((f.get("answer.tokens") or 0) for f in feats)),
        "fitted_on": {"runs": sources, "items": len(rows), "wrong": int(wrong.sum())},
    }


def build_profile(
    model: str,
    aliases: list[str],
    reference: list[list[dict[str, Any]]],
    reference_info: dict[str, Any],
    labelled: list[Path],
    min_tokens: int | None = None,
    *,
    probe: bool = False,
    prompts: list[str] | None = None,
    engine_model: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """The profile of ``model``. With ``probe`` (and labelled runs) a hidden-state probe is fitted too
    (services/evaluation/probe.py) and becomes a P(wrong) feature; the reference sessions (generated
    from ``prompts``, one list per prompt × seed in order) then get their probe projections by teacher
    forcing, so the documented risk rates are what a live session with the probe gets."""
    from services.alerter.settings import AlerterSettings

    if not reference or not any(reference):
        raise CalibrationError("the reference corpus produced no tokens")
    if min_tokens is None:
        min_tokens = AlerterSettings().risk_reference_min_tokens
    today = dt.date.today().isoformat()
    profile: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "id": f"{model}/{today}",
        "model": model,
        "aliases": aliases,
        "token_quantiles": token_quantiles(reference),
        "session_quantiles": session_quantiles(reference, min_tokens),
        "p_wrong": None,
        "fitted_on": {
            "reference": {
                **reference_info,
                "sessions": len(reference),
                "tokens": sum(len(s) for s in reference),
                "sessions_judged": sum(len(s) >= min_tokens for s in reference),
            }
        },
    }
    if labelled and probe:
        from services.evaluation import probe as probes

        states = probes.HiddenStates(engine_model)
        _, weights = labelled_rows(labelled)
        section, projections = probes.fit(
            labelled, weights, states, progress=(lambda n, t: progress("probe", n, t)) if progress else None
        )
        profile["probe"] = section
        profile["p_wrong"] = fit_p_wrong(labelled, projections)
        if prompts:
            per = len(reference) // len(prompts)
            reference = [states.project(prompts[i // per], s, section) for i, s in enumerate(reference)]
    elif labelled:
        profile["p_wrong"] = fit_p_wrong(labelled)
    parse(profile, "the profile just fitted")  # what the alerter will read
    profile["risk_rates"] = risk_rates(profile, reference)
    parse(profile, "the profile just fitted")
    return profile

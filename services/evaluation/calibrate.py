"""``uq calibrate``: fit a model's calibration profile (format in services/alerter/profile.py).

Two parts, each from the model's own generations:
- **reference**: the model generates for an ordinary prompt corpus (in-process, the services' own
  engine and auditor; several seeds at the given temperature); the quantiles of every token metric
  over those tokens become the profile's ``token_quantiles``;
- **labelled** (optional): ``uq eval`` run folders on QA *dev* splits. A logistic regression over the
  answer span's sequence scores (standardised, plus log(1 + G-NLL)) predicts "wrong"; its 5-fold
  out-of-fold predictions are recalibrated by isotonic regression to the observed share of wrong
  answers; the final logistic model is refitted on all of them. Runs of a file whose name says
  ``test`` are refused: reports are made on test splits, never fits.
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
) -> tuple[str, list[list[dict[str, Any]]]]:
    """(model name, per session its tokens' metrics) for every prompt × seed, in-process."""
    from services.evaluation.pipeline import LocalPipeline

    pipeline = LocalPipeline(model)
    sessions = []
    try:
        total = len(prompts) * seeds
        for i, prompt in enumerate(prompts):
            for seed in range(seeds):
                sampling = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
                run = pipeline.run(Request(prompt, None, []), sampling)
                sessions.append([{"text": a["text"], **a["metrics"]} for a in run.audits])
                if progress is not None:
                    progress(i * seeds + seed + 1, total)
    finally:
        pipeline.close()
    return pipeline.model, sessions


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


def fit_p_wrong(folders: list[Path]) -> dict[str, Any]:
    """The ``p_wrong`` section from labelled ``uq eval`` folders (dev splits only)."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    check_labelled(folders)
    rows: list[dict[str, Any]] = []
    sources = []
    for folder in folders:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        these = list(records(folder))
        rows += these
        sources.append({"data": config.get("data"), "style": config.get("style"), "items": len(these)})
    wrong = np.array([0 if r["correct"] else 1 for r in rows])
    if wrong.min() == wrong.max() or min(wrong.sum(), len(wrong) - wrong.sum()) < 10:
        raise CalibrationError("the labelled runs need at least 10 right and 10 wrong answers")
    feats = [session_features(r["tokens"]) for r in rows]
    raw = np.array([[_value(f, n) for n in P_WRONG_FEATURES] for f in feats], dtype=np.float64)
    fill = np.array([np.nanquantile(col, 0.99) if np.isfinite(col).any() else 0.0 for col in raw.T])
    x = np.where(np.isnan(raw), fill, raw)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    lr = LogisticRegression(C=1.0, max_iter=5000)
    out_of_fold = cross_val_predict(
        lr, z, wrong, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba"
    )[:, 1]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(out_of_fold, wrong)
    lr.fit(z, wrong)
    return {
        "features": list(P_WRONG_FEATURES),
        "fill": fill.tolist(),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": lr.coef_[0].tolist(),
        "intercept": float(lr.intercept_[0]),
        "iso_x": [float(v) for v in iso.X_thresholds_],
        "iso_y": [float(v) for v in iso.y_thresholds_],
        "fitted_on": {"runs": sources, "items": len(rows), "wrong": int(wrong.sum())},
    }


def build_profile(
    model: str,
    aliases: list[str],
    reference: list[list[dict[str, Any]]],
    reference_info: dict[str, Any],
    labelled: list[Path],
) -> dict[str, Any]:
    if not reference or not any(reference):
        raise CalibrationError("the reference corpus produced no tokens")
    today = dt.date.today().isoformat()
    profile = {
        "format": PROFILE_FORMAT,
        "id": f"{model}/{today}",
        "model": model,
        "aliases": aliases,
        "token_quantiles": token_quantiles(reference),
        "p_wrong": fit_p_wrong(labelled) if labelled else None,
        "fitted_on": {
            "reference": {**reference_info, "sessions": len(reference), "tokens": sum(len(s) for s in reference)}
        },
    }
    parse(profile, "the profile just fitted")  # what the alerter will read
    return profile

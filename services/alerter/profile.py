"""Calibration profiles: what is ordinary for one model, and how likely its answer is wrong.

A profile is one versioned JSON file per model (``uq calibrate`` writes it; docs/evaluation.md):

```json
{"format": 1, "id": "SmolLM2-135M-Instruct/2026-12-01", "model": "SmolLM2-135M-Instruct",
 "aliases": ["embedded"],
 "token_quantiles": {"hbar_s": {"0.5": 1.2, "0.99": 4.1, ...}, "prob": {"0.01": 0.004, ...}, ...},
 "session_quantiles": {"all.mean_nll": {"0.5": 2.1, "0.9": 3.0, ...}},
 "p_wrong": {"features": [...], "fill": [...], "mean": [...], "scale": [...], "coef": [...],
             "intercept": -1.2, "iso_x": [...], "iso_y": [...], "fitted_on": {...}},
 "risk_rates": {"safe": 0.8, "warning": 0.15, "critical": 0.04, "emergency": 0.01},
 "fitted_on": {...}}
```

- ``token_quantiles``: quantiles of each token metric over the model's own generations of an ordinary
  prompt corpus. Rules with relative thresholds read them (``quantile``), so "above the 99th
  percentile of ℏₛ" means the same share of ordinary tokens for every model.
- ``session_quantiles``: quantiles of session scores (``all.mean_nll``: the mean surprisal of a whole
  generation) over the same reference sessions: how unusual a session is for this model (the risk
  level's *session* evidence, services/alerter/risk.py).
- ``probe`` (white-box, optional): ``{"layer", "weights", "intercept"}``, a linear probe on one layer's
  hidden state fitted on labelled QA (``uq calibrate --probe``); engines that can publish each token's
  projection on it (``TokenEvent.probe``), and the answer's mean projection is a P(wrong) feature.
- ``risk_rates``: the share of the reference sessions whose peak risk reached each level, measured by
  ``uq calibrate`` with the settings it ran under: the expected rates on ordinary text.
- ``p_wrong``: a logistic combination of the session's sequence scores (services/alerter/scores.py,
  standardised), then an isotonic map of its output to the observed share of wrong answers on
  labelled QA (both fitted on dev splits only). Absent when no labelled data was given.
  ``max_answer_tokens``: the longest answer span of the labelled data. A longer answer (an opening
  sentence of open-ended prose, say) is outside what the map was fitted on: it gets no P(wrong).

Profiles shipped with the code live in ``services/alerter/profiles/``; ``UQ_PROFILES_DIR`` adds a
folder of your own (searched first). Applying one is pure Python (a dot product and an interpolation),
cheap enough for every token.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from services.alerter.errors import ProfileError

PROFILE_FORMAT = 1
P_WRONG_FLOOR = 0.005
BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"


@dataclass(frozen=True, slots=True)
class PWrongModel:
    """Logistic regression on standardised features, then an isotonic (monotone) recalibration."""

    features: tuple[str, ...]
    fill: tuple[float, ...]  # value of a missing feature (the most uncertain value seen in fitting)
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    iso_x: tuple[float, ...]
    iso_y: tuple[float, ...]
    max_answer_tokens: int | None = None  # the longest answer it was fitted on; longer ones are out of its domain

    def applies(self, answer_tokens: int) -> bool:
        """Whether an answer of this many tokens is within what the model was fitted on."""
        return self.max_answer_tokens is None or answer_tokens <= self.max_answer_tokens

    def raw(self, features: dict[str, float | None]) -> float:
        """The logistic model's probability, before the isotonic map."""
        z = self.intercept
        for name, fill, mean, scale, coef in zip(
            self.features, self.fill, self.mean, self.scale, self.coef, strict=True
        ):
            value = _feature(features, name)
            x = fill if value is None or not math.isfinite(value) else value
            z += coef * (x - mean) / scale
        return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))

    def __call__(self, features: dict[str, float | None]) -> float:
        """Calibrated P(wrong): the isotonic map, linear between its knots, flat beyond them, kept within
        [``P_WRONG_FLOOR``, 1 − ``P_WRONG_FLOOR``]: a few thousand labelled answers cannot make any
        answer certainly right or certainly wrong."""
        p = interpolate(self.iso_x, self.iso_y, self.raw(features))
        return min(max(p, P_WRONG_FLOOR), 1.0 - P_WRONG_FLOOR)


def _feature(features: dict[str, float | None], name: str) -> float | None:
    """A feature by name; ``log1p:<name>`` is log(1 + value)."""
    if name.startswith("log1p:"):
        value = features.get(name[6:])
        return math.log1p(value) if value is not None and value > -1 else None
    return features.get(name)


def interpolate(xs: tuple[float, ...], ys: tuple[float, ...], x: float) -> float:
    if not xs:
        raise ValueError("empty isotonic map")
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A linear probe on one layer's hidden state (``layer``: index into ``hidden_states``, 0 = the
    embeddings): white-box engines publish each token's projection ``weights · h`` (``TokenEvent.probe``);
    the span's mean projection is the sequence score ``probe``, a feature of P(wrong)."""

    layer: int
    weights: tuple[float, ...]
    intercept: float = 0.0  # the probe's own logistic intercept: logit(wrong) ≈ mean projection + intercept


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    model: str
    aliases: tuple[str, ...]
    token_quantiles: dict[str, dict[float, float]]
    p_wrong: PWrongModel | None
    fitted_on: dict[str, Any] = field(default_factory=dict)
    session_quantiles: dict[str, dict[float, float]] = field(default_factory=dict)
    risk_rates: dict[str, float] = field(default_factory=dict)
    probe: ProbeSpec | None = None

    def quantile(self, metric: str, q: float) -> float | None:
        """The model's ``q`` quantile of ``metric`` on ordinary text (linear between stored quantiles)."""
        table = self.token_quantiles.get(metric)
        if not table:
            return None
        qs = tuple(sorted(table))
        return interpolate(qs, tuple(table[k] for k in qs), q)

    def percentile(self, score: str, value: float) -> float | None:
        """Where ``value`` of a session score falls among the model's reference sessions: the share of
        them below it (0–1, linear between stored quantiles, clamped to the outermost ones)."""
        table = self.session_quantiles.get(score)
        if not table:
            return None
        qs = tuple(sorted(table))
        values = tuple(table[k] for k in qs)
        if value >= values[-1]:
            return qs[-1] if value == values[-1] else 1.0  # beyond every stored quantile
        # quantile values rise with q (ties where the data repeat): invert by the last knot at or below
        i = bisect.bisect_right(values, value)
        if i == 0:
            return 0.0
        x0, x1, y0, y1 = values[i - 1], values[i], qs[i - 1], qs[i]
        return y0 if x1 == x0 else y0 + (y1 - y0) * (value - x0) / (x1 - x0)


def parse(raw: Any, where: str) -> Profile:
    """A profile from its JSON; ProfileError naming ``where`` and the field when it is not one."""
    try:
        if raw.get("format") != PROFILE_FORMAT:
            raise ProfileError(
                where, f"format {raw.get('format')!r} is not {PROFILE_FORMAT}; refit it with uq calibrate"
            )
        quantiles = {
            metric: {float(q): float(v) for q, v in table.items()} for metric, table in raw["token_quantiles"].items()
        }
        sessions = {
            score: {float(q): float(v) for q, v in table.items()}
            for score, table in (raw.get("session_quantiles") or {}).items()
        }
        rates = {str(level): float(share) for level, share in (raw.get("risk_rates") or {}).items()}
        pr = raw.get("probe")
        probe = (
            ProbeSpec(int(pr["layer"]), tuple(float(v) for v in pr["weights"]), float(pr.get("intercept", 0.0)))
            if pr
            else None
        )
        pw = raw.get("p_wrong")
        model = None
        if pw is not None:
            n = len(pw["features"])
            if not all(len(pw[k]) == n for k in ("fill", "mean", "scale", "coef")) or len(pw["iso_x"]) != len(
                pw["iso_y"]
            ):
                raise ProfileError(where, "p_wrong: features, fill, mean, scale and coef differ in length")
            model = PWrongModel(
                features=tuple(pw["features"]),
                fill=tuple(float(v) for v in pw["fill"]),
                mean=tuple(float(v) for v in pw["mean"]),
                scale=tuple(float(v) or 1.0 for v in pw["scale"]),
                coef=tuple(float(v) for v in pw["coef"]),
                intercept=float(pw["intercept"]),
                iso_x=tuple(float(v) for v in pw["iso_x"]),
                iso_y=tuple(float(v) for v in pw["iso_y"]),
                max_answer_tokens=int(pw["max_answer_tokens"]) if pw.get("max_answer_tokens") is not None else None,
            )
        return Profile(
            id=str(raw["id"]),
            model=str(raw["model"]),
            aliases=tuple(raw.get("aliases", ())),
            token_quantiles=quantiles,
            p_wrong=model,
            fitted_on=dict(raw.get("fitted_on", {})),
            session_quantiles=sessions,
            risk_rates=rates,
            probe=probe,
        )
    except ProfileError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ProfileError(where, f"not a calibration profile ({type(exc).__name__}: {exc})") from None


def load(path: str | Path) -> Profile:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ProfileError(str(path), f"cannot read it ({exc})") from None
    return parse(raw, str(path))


@lru_cache(maxsize=8)
def catalogue(extra_dir: str = "") -> dict[str, Profile]:
    """Every profile by model name and alias: ``extra_dir`` first (a user's), then the shipped ones."""
    found: dict[str, Profile] = {}
    dirs = [Path(extra_dir)] if extra_dir else []
    for directory in [*dirs, BUILTIN_DIR]:
        if not directory.is_dir():
            if directory != BUILTIN_DIR:
                raise ProfileError(str(directory), "UQ_PROFILES_DIR is not a folder")
            continue
        for path in sorted(directory.glob("*.json")):
            profile = load(path)
            for name in (profile.model, *profile.aliases):
                found.setdefault(name, profile)
    return found


def for_model(model: str | None, extra_dir: str = "") -> Profile | None:
    """The profile of ``model`` (by name or alias), or None: the model runs uncalibrated."""
    if not model:
        return None
    return catalogue(extra_dir).get(model)

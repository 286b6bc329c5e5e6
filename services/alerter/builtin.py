"""The built-in rules, with the original README's defaults. Loaded by dotted path like any user rule.

| rule | fires when | severity |
|---|---|---|
| HIGH_UNCERTAINTY | ℏₛ > the model's ``high_uncertainty_quantile`` (99th percentile) with a profile, else ``high_uncertainty_threshold`` (2.5) | warning |
| UNCERTAINTY_SPIKE | ℏₛ > ``spike_factor`` (1.5) × max(EWMA of the session's earlier ℏₛ, floor); floor: the model's 90th percentile with a profile, else ``spike_floor`` (1.0) | warning |
| LOW_CONFIDENCE | p < the model's ``low_confidence_quantile`` (1st percentile) with a profile, else ``low_confidence_threshold`` (0.3) | info |
| REPETITION | the last ``repetition_ngram`` (3) tokens occurred ``repetition_count`` (3) times within the last ``repetition_window`` (48) | warning |
| ANOMALY | robust z-score of the metric (ℏₛ) against the session's last ``anomaly_window`` tokens > ``anomaly_z`` | warning |

Relative thresholds (``UQ_THRESHOLDS=relative``, the default) apply only to models with a calibration
profile; ``UQ_THRESHOLDS=absolute`` keeps the original README's fixed ones for every model.
A token whose metric is null (not computable from what the producer sent) never fires a rule on it.
"""

from __future__ import annotations

from typing import Any

from services.alerter import profile
from services.alerter.rules import Finding, Rule, describe, fmt, label, quote
from services.alerter.settings import AlerterSettings
from services.common.contracts import AuditEvent, Metrics

#: Metrics a rule can look at (every numeric field of Metrics).
NUMERIC_METRICS: tuple[str, ...] = tuple(n for n in Metrics.model_fields if n != "exact")


class _Relative:
    """Where a threshold comes from: the fixed setting, or the model's own quantile of the metric when
    thresholds are relative and the model has a calibration profile (services/alerter/profile.py)."""

    def __init__(self, metric: str, fixed: float, quantile: float | None, profiles_dir: str = "") -> None:
        self.metric = metric
        self.fixed = fixed
        self.quantile = quantile  # None: always the fixed threshold
        self.profiles_dir = profiles_dir
        self._by_model: dict[str, tuple[float, str]] = {}

    def __call__(self, model: str) -> tuple[float, str]:
        """(threshold, how to name it in a message) for ``model``."""
        cached = self._by_model.get(model)
        if cached is not None:
            return cached
        found = (self.fixed, fmt(self.fixed))
        if self.quantile is not None:
            prof = profile.for_model(model, self.profiles_dir)
            value = prof.quantile(self.metric, self.quantile) if prof is not None else None
            if value is not None:
                found = (value, f"{fmt(value)}, this model's {_ordinal(self.quantile)} percentile")
        if len(self._by_model) < 256:
            self._by_model[model] = found
        return found


ThresholdPolicy = dict[str, dict[str, float | None]]  # metric -> {"fixed": x, "quantile": q or None}


def threshold_policy(settings: AlerterSettings) -> ThresholdPolicy:
    """Where HIGH_UNCERTAINTY's ℏₛ and LOW_CONFIDENCE's probability thresholds come from, by metric: the
    fixed setting, and the model's quantile when thresholds are relative. The alerter's heartbeat
    carries it, so the gateway's ``GET /config`` (and the dashboard's chart) shows the thresholds the
    rules use."""
    relative = settings.thresholds == "relative"
    return {
        "hbar_s": {
            "fixed": settings.high_uncertainty_threshold,
            "quantile": settings.high_uncertainty_quantile if relative else None,
        },
        "prob": {
            "fixed": settings.low_confidence_threshold,
            "quantile": settings.low_confidence_quantile if relative else None,
        },
    }


def effective_threshold(policy: ThresholdPolicy, metric: str, model: str, profiles_dir: str = "") -> float:
    """The threshold the rule on ``metric`` uses for ``model`` under ``policy``."""
    entry = policy[metric]
    fixed = entry["fixed"]
    assert fixed is not None
    return _Relative(metric, fixed, entry["quantile"], profiles_dir)(model)[0]


def _ordinal(q: float) -> str:
    pct = q * 100
    text = f"{pct:g}"
    return text + ("st" if text.endswith("1") and not text.endswith("11") else "th")


class HighUncertainty(Rule):
    """ℏₛ above a threshold: the model's 99th percentile with a profile (relative thresholds), else 2.5."""

    name = "HIGH_UNCERTAINTY"
    severity = "warning"

    def __init__(self, threshold: float = 2.5, quantile: float | None = None, profiles_dir: str = "") -> None:
        self.threshold = threshold
        self.limit = _Relative("hbar_s", threshold, quantile, profiles_dir)

    @classmethod
    def from_settings(cls, settings: AlerterSettings) -> Rule:
        policy = threshold_policy(settings)["hbar_s"]
        return cls(policy["fixed"] or 0.0, policy["quantile"], settings.profiles_dir)

    def check(self, audit: AuditEvent, state: dict[str, Any]) -> Finding | None:
        h = audit.metrics.hbar_s
        if h is None:
            return None
        threshold, named = self.limit(audit.model)
        if h <= threshold:
            return None
        return Finding(f"{describe(audit)}: ℏₛ = {fmt(h)} above {named}", {"hbar_s": h, "threshold": threshold})


class LowConfidence(Rule):
    """The emitted token's probability below a threshold: the model's 1st percentile with a profile
    (relative thresholds), else 0.3."""

    name = "LOW_CONFIDENCE"
    severity = "info"

    def __init__(self, threshold: float = 0.3, quantile: float | None = None, profiles_dir: str = "") -> None:
        self.threshold = threshold
        self.limit = _Relative("prob", threshold, quantile, profiles_dir)

    @classmethod
    def from_settings(cls, settings: AlerterSettings) -> Rule:
        policy = threshold_policy(settings)["prob"]
        return cls(policy["fixed"] or 0.0, policy["quantile"], settings.profiles_dir)

    def check(self, audit: AuditEvent, state: dict[str, Any]) -> Finding | None:
        p = audit.metrics.prob
        if p is None:
            return None
        threshold, named = self.limit(audit.model)
        if p >= threshold:
            return None
        return Finding(f"{describe(audit)}: p = {fmt(p)} below {named}", {"prob": p, "threshold": threshold})


class UncertaintySpike(Rule):
    """ℏₛ jumps well above the session's recent baseline.

    The baseline is an exponentially weighted moving average of the session's earlier ℏₛ
    (``b ← α·h + (1−α)·b``, starting at the first token's ℏₛ). The token fires when
    ``h > factor × max(b, floor)``, after ``warmup`` tokens; the floor keeps a near-zero baseline
    (a run of certain tokens) from turning an ordinary ℏₛ of 0.5 into a "spike". With a profile and
    relative thresholds the floor is the model's ``spike_floor_quantile`` (90th percentile) of ℏₛ, so
    a spike is a jump to a value that is rare for the model, not a dip's rebound.
    State: ``{"b": baseline, "n": tokens seen}``.
    """

    name = "UNCERTAINTY_SPIKE"
    severity = "warning"

    def __init__(
        self,
        factor: float = 1.5,
        floor: float = 1.0,
        alpha: float = 0.2,
        warmup: int = 4,
        floor_quantile: float | None = None,
        profiles_dir: str = "",
    ) -> None:
        self.factor = factor
        self.floor = floor
        self.alpha = alpha
        self.warmup = warmup
        self.floor_of = _Relative("hbar_s", floor, floor_quantile, profiles_dir)

    @classmethod
    def from_settings(cls, settings: AlerterSettings) -> Rule:
        relative = settings.thresholds == "relative"
        return cls(
            settings.spike_factor,
            settings.spike_floor,
            settings.spike_alpha,
            settings.spike_warmup,
            settings.spike_floor_quantile if relative else None,
            settings.profiles_dir,
        )

    def check(self, audit: AuditEvent, state: dict[str, Any]) -> Finding | None:
        h = audit.metrics.hbar_s
        if h is None:
            return None
        n = state.get("n", 0)
        baseline: float = state.get("b", h)
        state["n"] = n + 1
        state["b"] = self.alpha * h + (1 - self.alpha) * baseline
        reference = max(baseline, self.floor_of(audit.model)[0])
        if n < self.warmup or h <= self.factor * reference:
            return None
        return Finding(
            f"{describe(audit)}: ℏₛ = {fmt(h)} jumped to {h / reference:.1f}× the recent baseline {fmt(baseline)}",
            {"hbar_s": h, "baseline": baseline},
        )


class Anomaly(Rule):
    """A statistical outlier for its session: the robust (modified) z-score

    ``z = 0.6745 · (x − median) / max(MAD, mad_floor)`` over the session's last ``window`` values of
    the metric (Iglewicz & Hoaglin; 0.6745 makes MAD comparable to a standard deviation), firing
    when ``z > threshold`` (one-sided: only unusually uncertain tokens) after ``min_tokens`` values.
    State: ``{"w": [the last window values, in millionths]}``.
    """

    name = "ANOMALY"
    severity = "warning"

    def __init__(
        self,
        metric: str = "hbar_s",
        threshold: float = 3.5,
        window: int = 32,
        min_tokens: int = 8,
        mad_floor: float = 0.1,
    ) -> None:
        if metric not in NUMERIC_METRICS:
            raise ValueError(f"anomaly metric {metric!r} is not one of {', '.join(NUMERIC_METRICS)}")
        self.metric = metric
        self.threshold = threshold
        self.window = window
        self.min_tokens = min_tokens
        self.mad_floor = mad_floor

    @classmethod
    def from_settings(cls, settings: AlerterSettings) -> Rule:
        return cls(
            settings.anomaly_metric,
            settings.anomaly_z,
            settings.anomaly_window,
            settings.anomaly_min_tokens,
            settings.anomaly_mad_floor,
        )

    def check(self, audit: AuditEvent, state: dict[str, Any]) -> Finding | None:
        x = getattr(audit.metrics, self.metric)
        if x is None:
            return None
        x = float(x)
        # The window holds millionths as ints: exact in JSON and several times faster to persist than floats.
        xi = round(x * 1e6)
        history: list[int] = state.setdefault("w", [])
        finding = None
        if len(history) >= self.min_tokens:
            ordered = sorted(history)
            med = _median(ordered)
            floor = self.mad_floor * 1e6
            # z ≤ 0.6745·(x − median)/mad_floor: most tokens are ruled out without computing the MAD
            if 0.6745 * (xi - med) > self.threshold * floor:
                mad = _median(sorted([abs(v - med) for v in ordered]))
                z = 0.6745 * (xi - med) / max(mad, floor)
                if z > self.threshold:
                    finding = Finding(
                        f"{describe(audit)}: {label(self.metric)} = {fmt(x)} is an outlier for this session "
                        f"(robust z = {z:.1f} above {self.threshold:g}; median {fmt(med / 1e6)})",
                        {self.metric: x, "z": z, "median": med / 1e6, "mad": mad / 1e6},
                    )
        history.append(xi)
        if len(history) > self.window:
            del history[0]
        return finding


class Repetition(Rule):
    """The text loops: the n-gram of tokens ending at this one already occurred ``repeats − 1`` times
    within the session's last ``window`` tokens (by token text; whitespace-only n-grams never count).

    A degenerate loop ("the statue of the statue of the statue …") is fluent and, token by token, often
    quite certain, so no uncertainty rule sees it; this one fires on every token that continues the
    loop, which keeps the risk level up for as long as the text loops.
    State: ``{"t": [the last window token texts]}``.
    """

    name = "REPETITION"
    severity = "warning"

    def __init__(self, n: int = 3, repeats: int = 3, window: int = 48) -> None:
        if n < 1 or repeats < 2 or window < n * repeats:
            raise ValueError("repetition needs n ≥ 1, repeats ≥ 2 and window ≥ n × repeats")
        self.n = n
        self.repeats = repeats
        self.window = window

    @classmethod
    def from_settings(cls, settings: AlerterSettings) -> Rule:
        return cls(settings.repetition_ngram, settings.repetition_count, settings.repetition_window)

    def check(self, audit: AuditEvent, state: dict[str, Any]) -> Finding | None:
        texts: list[str] = state.setdefault("t", [])
        texts.append(audit.text)
        if len(texts) > self.window:
            del texts[0]
        n = self.n
        if len(texts) < n * self.repeats:
            return None
        last = texts[-1]
        # cheap first (list.count runs in C): the n-gram can only recur where its last token does
        if texts.count(last) < self.repeats:
            return None
        ends = [i for i, t in enumerate(texts) if t == last and i >= n - 1]
        if len(ends) < self.repeats:
            return None
        gram = texts[-n:]
        if not "".join(gram).strip():
            return None
        count = sum(1 for i in ends if texts[i - n + 1 : i + 1] == gram)
        if count < self.repeats:
            return None
        phrase = quote("".join(gram))
        return Finding(
            f"{describe(audit)}: the text loops; {phrase} occurred {count} times in the last {len(texts)} tokens",
            {"repeats": float(count)},
        )


def _median(ordered: list[int] | list[float]) -> float:
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2

"""Settings of the alerter (env prefix ``UQ_``; every one documented in docs/operations.md)."""

from __future__ import annotations

from pydantic import Field, model_validator

from services.common.settings import CommonSettings

BUILTIN_RULES = [
    "services.alerter.builtin:HighUncertainty",
    "services.alerter.builtin:UncertaintySpike",
    "services.alerter.builtin:LowConfidence",
    "services.alerter.builtin:Anomaly",
    "services.alerter.builtin:Repetition",
]


class AlerterSettings(CommonSettings):
    """The rules worker (``python -m services.alerter``)."""

    audit_group: str = Field("alerters", description="Consumer group on `uq:audits`.")
    session_group: str = Field(
        "alerters", description="Consumer group on `uq:sessions` (to learn that a session ended)."
    )
    partition_lease_s: float = Field(
        6.0,
        gt=0,
        le=300,
        description="How long an alerter's ownership of a partition lasts unless renewed (every third of it): "
        "a killed alerter's partitions move to another within 4/3 of this (docs/operations.md, Scaling).",
    )

    # Which rules run (see docs/alerts.md).
    builtin_rules: list[str] = Field(
        default_factory=lambda: list(BUILTIN_RULES),
        description="Built-in rule classes by dotted path (JSON list); `[]` turns them all off.",
    )
    python_rules: list[str] = Field(
        default_factory=list,
        description='Your rule classes by dotted path, JSON list: `["mypkg.rules:MyRule"]`.',
    )
    rules_file: str = Field("", description="YAML or JSON file of declarative rules; empty = none.")

    # Calibration profiles (docs/evaluation.md; the folder setting, UQ_PROFILES_DIR, is common).
    thresholds: str = Field(
        "relative",
        pattern="^(relative|absolute)$",
        description="`relative`: a model with a profile gets thresholds at its own percentiles; `absolute`: the fixed ones always.",
    )
    high_uncertainty_quantile: float = Field(
        0.99, gt=0, lt=1, description="With relative thresholds: HIGH_UNCERTAINTY fires above this quantile of ℏₛ."
    )
    spike_floor_quantile: float = Field(
        0.9, gt=0, lt=1, description="With relative thresholds: UNCERTAINTY_SPIKE's floor is this quantile of ℏₛ."
    )
    low_confidence_quantile: float = Field(
        0.01, gt=0, lt=1, description="With relative thresholds: LOW_CONFIDENCE fires below this quantile of p."
    )

    # Thresholds of the built-in rules.
    high_uncertainty_threshold: float = Field(2.5, ge=0, description="HIGH_UNCERTAINTY fires when ℏₛ is above this.")
    spike_factor: float = Field(1.5, gt=1, description="UNCERTAINTY_SPIKE fires when ℏₛ > factor × baseline.")
    spike_floor: float = Field(
        1.0, ge=0, description="Smallest baseline a spike is measured against, so near-zero baselines do not fire."
    )
    spike_alpha: float = Field(0.2, gt=0, le=1, description="Weight of the newest token in the ℏₛ EWMA baseline.")
    spike_warmup: int = Field(4, ge=1, description="Tokens of a session before UNCERTAINTY_SPIKE may fire.")
    low_confidence_threshold: float = Field(0.3, ge=0, le=1, description="LOW_CONFIDENCE fires when p is below this.")
    repetition_ngram: int = Field(3, ge=1, le=32, description="REPETITION: tokens in the repeated n-gram.")
    repetition_count: int = Field(3, ge=2, le=64, description="REPETITION fires at this many occurrences.")
    repetition_window: int = Field(48, ge=6, le=1024, description="REPETITION: tokens of history searched.")
    anomaly_metric: str = Field("hbar_s", description="Metric ANOMALY looks at (any numeric audit metric).")
    anomaly_z: float = Field(3.5, gt=0, description="ANOMALY fires when the robust z-score is above this.")
    anomaly_window: int = Field(32, ge=4, le=1024, description="Tokens of history for ANOMALY's median and MAD.")
    anomaly_min_tokens: int = Field(8, ge=3, description="Tokens of history before ANOMALY may fire.")
    anomaly_mad_floor: float = Field(
        0.1, gt=0, description="Smallest MAD used, so a flat history does not turn tiny changes into outliers."
    )

    # Floods.
    cooldown_tokens: int = Field(
        8, ge=1, description="After a rule alerts in a session, its next alert waits at least this many tokens."
    )
    cooldown_backoff: float = Field(
        2.0, ge=1, description="Each alert while a rule keeps firing multiplies its cooldown by this."
    )
    cooldown_max_tokens: int = Field(256, ge=1, description="Longest cooldown reached by backing off.")

    # Risk level (see docs/alerts.md, "Risk level").
    risk_window: int = Field(32, ge=1, le=4096, description="Recent tokens whose rule firings make the risk score.")
    risk_warning: float = Field(4, gt=0, description="Risk score at which a session is `warning`.")
    risk_critical: float = Field(12, gt=0, description="Risk score at which a session is `critical`.")
    risk_emergency: float = Field(24, gt=0, description="Risk score at which a session is `emergency`.")
    risk_p_wrong_bands: tuple[float, float, float] = Field(
        (0.5, 0.8, 0.95),
        description="Calibrated models: P(answer wrong) at which a session is warning, critical, emergency (JSON list).",
    )
    risk_reference_bands: tuple[float, float, float] = Field(
        (0.9, 0.99, 0.999),
        description="Calibrated models: percentile among the model's reference sessions at which a session is "
        "warning, critical, emergency (JSON list).",
    )
    risk_reference_min_tokens: int = Field(
        32, ge=1, description="Calibrated models: tokens before a session is compared with the reference sessions."
    )
    risk_release: float = Field(
        0.75,
        gt=0,
        le=1,
        description="A level is left downwards only when the score falls below release × its threshold.",
    )

    # Live scores (docs/alerts.md, "Live scores").
    scores_every: int = Field(
        16,
        ge=0,
        description="Send the session's sequence scores so far every this many tokens (and when the answer "
        "is complete); 0 = only in the summary.",
    )

    # Order and state.
    reorder_max: int = Field(256, ge=1, description="Audits held per session while waiting for a missing seq.")
    reorder_timeout_ms: int = Field(
        2_000, ge=0, description="How long a missing seq is waited for before the alerter goes on without it."
    )
    end_timeout_ms: int = Field(
        30_000, ge=0, description="After a session ends, how long its missing audits are waited for before the summary."
    )
    session_idle_s: float = Field(
        300, gt=0, description="A session without audits this long leaves memory (its state stays in Redis)."
    )
    max_sessions: int = Field(
        100_000, ge=1, description="Sessions held in memory; the least recently used leave first."
    )
    state_ttl_s: int = Field(86_400, gt=0, description="How long a session's persisted state is kept in Redis.")
    sweep_interval_ms: int = Field(200, gt=0, description="How often reorder and end timeouts are checked.")

    @model_validator(mode="after")
    def _risk_thresholds_rise(self) -> AlerterSettings:
        if not self.risk_warning < self.risk_critical < self.risk_emergency:
            raise ValueError(
                "risk thresholds must rise: UQ_RISK_WARNING < UQ_RISK_CRITICAL < UQ_RISK_EMERGENCY "
                f"(got {self.risk_warning:g}, {self.risk_critical:g}, {self.risk_emergency:g})"
            )
        for name in ("risk_p_wrong_bands", "risk_reference_bands"):
            bands = getattr(self, name)
            if not (0 < bands[0] < bands[1] < bands[2] <= 1):
                raise ValueError(f"UQ_{name.upper()} must rise within (0, 1]: got {list(bands)}")
        return self

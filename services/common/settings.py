"""Settings: one pydantic-settings base, one subclass per service.

Every field is read from an environment variable named ``UQ_<FIELD>`` (e.g. ``UQ_REDIS_URL``).
Every setting is described in ``docs/operations.md``; ``tests/common/test_settings_docs.py`` fails
when one is not.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every service reads: where Redis is, how streams are named and kept, health and logs."""

    model_config = SettingsConfigDict(env_prefix="UQ_", extra="ignore", frozen=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis server holding the streams.")
    stream_prefix: str = Field("uq:", description="Prefix of every stream and key this system writes.")
    connect_retries: int = Field(10, ge=0, description="Attempts to reach Redis at start before giving up.")
    connect_retry_delay_s: float = Field(0.5, gt=0, description="Delay between those attempts (doubles).")
    heartbeat_interval_s: float = Field(2.0, gt=0, description="How often a service writes its heartbeat.")
    log_level: str = Field("INFO", description="Python log level: DEBUG, INFO, WARNING, ERROR.")
    log_format: str = Field("json", pattern="^(json|text)$", description="`json` lines or plain `text`.")
    instance: str = Field("", description="Consumer name within its group; defaults to host-pid.")

    # Retention: MAXLEN ~ of each stream (approximate trimming; see docs/streams.md).
    maxlen_jobs: int = Field(10_000, gt=0, description="Retention of `uq:jobs` (entries, approximate).")
    maxlen_tokens: int = Field(5_000, gt=0, description="Retention of `uq:tokens` (entries, approximate).")
    maxlen_audits: int = Field(200_000, gt=0, description="Retention of `uq:audits`.")
    maxlen_alerts: int = Field(100_000, gt=0, description="Retention of `uq:alerts`.")
    maxlen_sessions: int = Field(100_000, gt=0, description="Retention of `uq:sessions`.")
    maxlen_dead: int = Field(10_000, gt=0, description="Retention of the dead-letter stream `uq:dead`.")

    # Consumer behaviour (bus).
    batch_size: int = Field(128, gt=0, le=10_000, description="Entries read per XREADGROUP call.")
    block_ms: int = Field(1_000, ge=0, description="How long one XREADGROUP blocks waiting for entries.")
    claim_idle_ms: int = Field(30_000, gt=0, description="An entry pending this long on a dead consumer is reclaimed.")
    max_deliveries: int = Field(
        5, gt=0, description="Attempts at an entry whose handler fails before it is dead-lettered."
    )
    dedupe_ttl_s: int = Field(
        86_400, gt=0, description="How long the per-session record of processed `seq` numbers is kept."
    )

    def stream(self, name: str) -> str:
        """The full name of a stream or key, e.g. ``stream("tokens") == "uq:tokens"``."""
        return f"{self.stream_prefix}{name}"


class GeneratorSettings(CommonSettings):
    """The model worker (``python -m services.generator``)."""

    model: str = Field("embedded", description="`embedded` (SmolLM2-135M-Instruct), a hub id or a path.")
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:[0-9]+)?)$", description="`auto`, `cpu`, `cuda`.")
    dtype: str = Field(
        "auto", pattern="^(auto|float32|float16|bfloat16)$", description="`auto`: bf16/fp16 on GPU, fp32 on CPU."
    )
    load_in_8bit: bool = Field(False, description="8-bit weights on GPU (needs bitsandbytes).")
    logits_mode: str = Field(
        "full", pattern="^(full|top_k)$", description="Publish the full float16 logits or the top-k only."
    )
    top_k_alternatives: int = Field(20, ge=1, le=1000, description="Alternatives published per token.")
    model_cache_dir: str = Field(
        "data/model-cache", description="Where the dequantised embedded model is cached after first load."
    )
    max_concurrent_jobs: int = Field(4, ge=1, description="Jobs one worker decodes at once (interleaved).")
    job_group: str = Field("generators", description="Consumer group on `uq:jobs`.")


class AuditorSettings(CommonSettings):
    """The stateless metrics worker (``python -m services.auditor``)."""

    token_group: str = Field("auditors", description="Consumer group on `uq:tokens`.")
    display_top_k: int = Field(10, ge=0, le=100, description="Alternatives copied into each audit for display.")


class AlerterSettings(CommonSettings):
    """The rules worker (``python -m services.alerter``)."""

    audit_group: str = Field("alerters", description="Consumer group on `uq:audits`.")


class GatewaySettings(CommonSettings):
    """The HTTP/WebSocket front door (``python -m services.gateway``)."""

    host: str = Field("127.0.0.1", description="Address the gateway binds.")
    port: int = Field(8080, ge=1, le=65_535, description="Port of REST, WebSocket and the dashboard.")
    frontend_dir: str = Field("frontend/dist", description="Built dashboard served at `/`.")

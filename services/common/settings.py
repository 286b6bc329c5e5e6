"""Settings: one pydantic-settings base, one subclass per service.

Every field is read from an environment variable named ``UQ_<FIELD>`` (e.g. ``UQ_REDIS_URL``).
Every setting is described in ``docs/operations.md``; ``tests/common/test_settings_docs.py`` fails
when one is not.
"""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every service reads: where Redis is, how streams are named and kept, health and logs."""

    model_config = SettingsConfigDict(env_prefix="UQ_", extra="ignore", frozen=True)

    profiles_dir: str = Field(
        "",
        description="Folder of calibration profiles of your own, searched before the shipped ones; empty = none "
        "(read by the alerter, and by the gateway to say which models are calibrated).",
    )
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
    token_group: str = Field(
        "auditors",
        description="The auditors' consumer group on `uq:tokens` (the gateway checks its backlog, the alerter its stranded entries).",
    )
    claim_idle_ms: int = Field(30_000, gt=0, description="An entry pending this long on a dead consumer is reclaimed.")
    max_deliveries: int = Field(
        5, gt=0, description="Attempts at an entry whose handler fails before it is dead-lettered."
    )
    dedupe_ttl_s: int = Field(
        86_400, gt=0, description="How long the per-session record of processed `seq` numbers is kept."
    )

    lease_timeout_s: float = Field(
        30.0, gt=0, description="A running session whose producer shows no sign of life this long is marked failed."
    )

    def stream(self, name: str) -> str:
        """The full name of a stream or key, e.g. ``stream("tokens") == "uq:tokens"``."""
        return f"{self.stream_prefix}{name}"

    def instance_name(self) -> str:
        """This process's name as a consumer and in its heartbeat: ``UQ_INSTANCE``, else host-pid."""
        return self.instance or f"{socket.gethostname()}-{os.getpid()}"

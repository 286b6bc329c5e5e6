"""Settings of the recorder (env prefix ``UQ_``; every one documented in docs/operations.md)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings

DEFAULT_DATABASE_URL = "sqlite:///data/uq.sqlite3"


class RecorderSettings(CommonSettings):
    """The audit trail writer (``python -m services.recorder``): streams → SQLite or PostgreSQL."""

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the audit trail: an SQLite file (folder created), or "
        "`postgresql+psycopg://user@host/db`.",
    )
    recorder_group: str = Field(
        "recorders", description="Consumer group on `uq:sessions`, `uq:audits` and `uq:alerts`."
    )
    recorder_batch_size: int = Field(
        1024,
        gt=0,
        le=10_000,
        description="Entries the recorder reads per XREADGROUP and writes per transaction (its own "
        "`UQ_BATCH_SIZE`: larger batches amortise each commit).",
    )
    recorder_audit_consumers: int = Field(
        2,
        ge=1,
        le=16,
        description="Consumers of `uq:audits` in one recorder process: while one batch is written, the "
        "next is read and decoded.",
    )
    retention_days: float = Field(
        0.0, ge=0, description="Sessions not updated for this many days are deleted; 0 keeps them forever."
    )
    retention_interval_s: float = Field(3_600.0, gt=0, description="How often the recorder applies the retention.")

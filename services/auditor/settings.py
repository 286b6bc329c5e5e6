"""Settings of the auditor (env prefix ``UQ_``; every one documented in docs/operations.md)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings


class AuditorSettings(CommonSettings):
    """The stateless metrics worker (``python -m services.auditor``)."""

    display_top_k: int = Field(10, ge=0, le=100, description="Alternatives copied into each audit for display.")

"""Settings of the alerter (env prefix ``UQ_``; every one documented in docs/operations.md)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings


class AlerterSettings(CommonSettings):
    """The rules worker (``python -m services.alerter``)."""

    audit_group: str = Field("alerters", description="Consumer group on `uq:audits`.")

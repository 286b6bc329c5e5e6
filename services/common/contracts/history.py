"""Read models of the audit trail: what the recorder's store returns and the gateway serves.

These are not stream entries; they are built from them (``uq:sessions``, ``uq:audits``, ``uq:alerts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from services.common.contracts.events import (
    AlertEvent,
    AuditEvent,
    RiskEvent,
    RiskLevel,
    SessionStatus,
    SummaryEvent,
)

SessionSort: TypeAlias = Literal["created", "updated", "tokens", "alerts", "peak", "risk", "status", "model"]
"""What a session list can be sorted by (``GET /sessions?sort=``)."""
SortOrder: TypeAlias = Literal["asc", "desc"]


@dataclass(frozen=True)
class SessionQuery:
    """One page of a session list (``GET /sessions``): the filters (every one that is set must hold),
    the sort and the page. ``q`` is a case-insensitive substring of the prompt, ``model`` the exact
    model name, ``peak`` the lowest peak risk level kept, ``since_ns``/``until_ns`` bound the creation
    time (inclusive, exclusive); ties sort newest first."""

    limit: int = 50
    offset: int = 0
    status: SessionStatus | None = None
    risk: RiskLevel | None = None
    q: str | None = None
    model: str | None = None
    peak: RiskLevel | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    sort: SessionSort = "created"
    order: SortOrder = "desc"


class SessionRecord(BaseModel):
    """One session as listed: lifecycle, counts, current risk and (once ended) its summary."""

    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(description="Session identifier.")
    status: SessionStatus = Field(description="queued, started, finished, failed or cancelled.")
    model: str | None = Field(None, description="Model name.")
    provider: str | None = Field(None, description="transformers, push, …")
    prompt: str | None = Field(None, description="Prompt.")
    reason: str | None = Field(None, description="Why it ended.")
    created_ns: int = Field(description="First entry seen, ns since the epoch.")
    updated_ns: int = Field(description="Last entry seen, ns since the epoch.")
    tokens: int = Field(0, ge=0, description="Tokens audited so far.")
    alerts: int = Field(
        0, ge=0, description="Alerts sent so far: alert entries on uq:alerts (firings the cooldown held back excluded)."
    )
    risk: RiskLevel = Field("safe", description="Current risk level.")
    peak_risk: RiskLevel = Field("safe", description="Highest risk level the session has reached so far.")
    summary: SummaryEvent | None = Field(None, description="The alerter's summary, once the session ended.")


class SessionHistory(BaseModel):
    """Everything recorded of one session, in seq order."""

    model_config = ConfigDict(extra="forbid")

    session: SessionRecord
    tokens: list[AuditEvent] = Field(default_factory=list, description="Audits in seq order.")
    alerts: list[AlertEvent] = Field(default_factory=list, description="Alerts sent, in seq order.")
    risks: list[RiskEvent] = Field(default_factory=list, description="Risk changes in seq order.")

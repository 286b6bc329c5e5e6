"""Stream contracts, version 1: the public shape of every entry on every stream.

Each stream entry is a Redis Streams entry with a ``data`` field holding the JSON of one of these
models, and, for token entries that carry full logits, a binary ``logits`` field (see
``services.common.codec`` and ``docs/streams.md``).
"""

from services.common.contracts.events import (
    RISK_LEVELS,
    SCHEMA_VERSION,
    STREAM_MODELS,
    AlertEvent,
    AlertFinding,
    AuditEvent,
    ChatMessage,
    Envelope,
    Event,
    JobRequest,
    Metrics,
    RiskEvent,
    RiskLevel,
    SamplingParams,
    ScoresEvent,
    SequenceScores,
    SessionEvent,
    SessionStatus,
    Severity,
    SummaryEvent,
    TokenEvent,
    TopKAlternative,
    TopKSource,
    Verification,
    now_ns,
)
from services.common.contracts.history import SessionHistory, SessionRecord

__all__ = [
    "RISK_LEVELS",
    "SCHEMA_VERSION",
    "STREAM_MODELS",
    "AlertEvent",
    "AlertFinding",
    "AuditEvent",
    "ChatMessage",
    "Envelope",
    "Event",
    "JobRequest",
    "Metrics",
    "RiskEvent",
    "RiskLevel",
    "SamplingParams",
    "ScoresEvent",
    "SequenceScores",
    "SessionEvent",
    "SessionHistory",
    "SessionRecord",
    "SessionStatus",
    "Severity",
    "SummaryEvent",
    "TokenEvent",
    "TopKAlternative",
    "TopKSource",
    "Verification",
    "now_ns",
]

"""The audit trail's tables (SQLAlchemy 2 declarative models).

Every table that holds stream entries has the primary key ``(session_id, seq)`` — the entry's
identity on its stream — so an entry delivered twice is inserted once (insert-or-ignore).

- ``sessions``: one row per session; lifecycle, counters and current risk, kept up to date by the
  recorder from all three streams. ``status_seq`` and ``risk_seq`` are the ``seq`` of the entries
  that set ``status`` and ``risk`` (−1: none yet), so entries applied late or twice change nothing.
- ``tokens``: one row per ``uq:audits`` entry: the token, its metrics (one column each) and top-k.
- ``alerts``: one row per ``AlertEvent`` (``kind = "alert"``) or ``RiskEvent`` (``kind = "risk"``)
  of ``uq:alerts``; they share the alerter's per-session ``seq``.
- ``summaries``: one row per ``SummaryEvent`` of ``uq:alerts``.

The schema is created and changed only by the Alembic migrations in ``migrations/versions``;
``tests/recorder/test_migrations.py`` fails when these models and the migrated schema differ.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Boolean, Double, Index, Integer, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class SessionRow(Base):
    __tablename__ = "sessions"

    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    status_seq: Mapped[int] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(512))
    provider: Mapped[str | None] = mapped_column(String(128))
    prompt: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    updated_ns: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(Integer)
    alerts: Mapped[int] = mapped_column(Integer)
    risk: Mapped[str] = mapped_column(String(16))
    risk_seq: Mapped[int] = mapped_column(Integer)
    peak_rank: Mapped[int] = mapped_column(Integer, server_default="0")  # index in RISK_LEVELS; since 0006

    __table_args__ = (
        Index("ix_sessions_created_ns", "created_ns"),
        Index("ix_sessions_updated_ns", "updated_ns"),
        Index("ix_sessions_peak_rank", "peak_rank"),
    )


class TokenRow(Base):
    __tablename__ = "tokens"

    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    token_ts_ns: Mapped[int] = mapped_column(BigInteger)
    token_id: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    distribution: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(512))
    prob: Mapped[float | None] = mapped_column(Double)
    surprisal: Mapped[float | None] = mapped_column(Double)
    entropy: Mapped[float | None] = mapped_column(Double)
    margin: Mapped[float | None] = mapped_column(Double)
    rank: Mapped[int | None] = mapped_column(Integer)
    hbar_s: Mapped[float | None] = mapped_column(Double)
    fisher_trace: Mapped[float | None] = mapped_column(Double)
    varentropy: Mapped[float | None] = mapped_column(Double)
    coverage: Mapped[float | None] = mapped_column(Double)
    exact: Mapped[bool] = mapped_column(Boolean)
    top_k: Mapped[Any] = mapped_column(JSONType)


class AlertRow(Base):
    __tablename__ = "alerts"

    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8))
    token_seq: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str | None] = mapped_column(String(128))
    severity: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    token_text: Mapped[str | None] = mapped_column(Text)
    values: Mapped[Any] = mapped_column(JSONType, nullable=True)
    level: Mapped[str | None] = mapped_column(String(16))
    previous: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    # alert: {"rules", "findings"}; risk: {"evidence", "p_wrong", "profile"}; null before revision 0004
    detail: Mapped[Any] = mapped_column(JSONType, nullable=True)


class SummaryRow(Base):
    __tablename__ = "summaries"

    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(Integer)
    alerts_by_rule: Mapped[Any] = mapped_column(JSONType)  # deprecated name of firings_by_rule, kept equal
    firings_by_rule: Mapped[Any | None] = mapped_column(JSONType)  # null in rows from before revision 0002
    alerts_sent_by_rule: Mapped[Any | None] = mapped_column(JSONType)
    max_hbar_s: Mapped[float | None] = mapped_column(Double)
    mean_hbar_s: Mapped[float | None] = mapped_column(Double)
    mean_entropy: Mapped[float | None] = mapped_column(Double)
    perplexity: Mapped[float | None] = mapped_column(Double)
    nll_bits: Mapped[float | None] = mapped_column(Double)
    low_confidence_share: Mapped[float | None] = mapped_column(Double)
    final_risk: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    peak_risk: Mapped[str] = mapped_column(String(16), default="safe")
    p_wrong: Mapped[float | None] = mapped_column(Double, nullable=True)
    profile: Mapped[str | None] = mapped_column(String(256), nullable=True)
    answer_scores: Mapped[Any] = mapped_column(JSONType, nullable=True)
    scores: Mapped[Any] = mapped_column(JSONType, nullable=True)
    verification: Mapped[Any] = mapped_column(JSONType, nullable=True)  # null before revision 0005


sessions = cast(Table, SessionRow.__table__)
tokens = cast(Table, TokenRow.__table__)
alerts = cast(Table, AlertRow.__table__)
summaries = cast(Table, SummaryRow.__table__)

"""The audit trail: sessions, tokens, alerts, summaries.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_seq", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(512)),
        sa.Column("provider", sa.String(128)),
        sa.Column("prompt", sa.Text()),
        sa.Column("reason", sa.Text()),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.Column("risk", sa.String(16), nullable=False),
        sa.Column("risk_seq", sa.Integer(), nullable=False),
    )
    op.create_index("ix_sessions_created_ns", "sessions", ["created_ns"])
    op.create_index("ix_sessions_updated_ns", "sessions", ["updated_ns"])
    op.create_table(
        "tokens",
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("token_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("token_id", sa.Integer()),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("distribution", sa.String(16), nullable=False),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("prob", sa.Double()),
        sa.Column("surprisal", sa.Double()),
        sa.Column("entropy", sa.Double()),
        sa.Column("margin", sa.Double()),
        sa.Column("rank", sa.Integer()),
        sa.Column("hbar_s", sa.Double()),
        sa.Column("fisher_trace", sa.Double()),
        sa.Column("varentropy", sa.Double()),
        sa.Column("coverage", sa.Double()),
        sa.Column("exact", sa.Boolean(), nullable=False),
        sa.Column("top_k", JSONType, nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("token_seq", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(128)),
        sa.Column("severity", sa.String(16)),
        sa.Column("message", sa.Text()),
        sa.Column("token_text", sa.Text()),
        sa.Column("values", JSONType),
        sa.Column("level", sa.String(16)),
        sa.Column("previous", sa.String(16)),
        sa.Column("reason", sa.Text()),
    )
    op.create_table(
        "summaries",
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("alerts_by_rule", JSONType, nullable=False),
        sa.Column("max_hbar_s", sa.Double()),
        sa.Column("mean_hbar_s", sa.Double()),
        sa.Column("mean_entropy", sa.Double()),
        sa.Column("perplexity", sa.Double()),
        sa.Column("nll_bits", sa.Double()),
        sa.Column("low_confidence_share", sa.Double()),
        sa.Column("final_risk", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
    )


def downgrade() -> None:
    for table in ("summaries", "alerts", "tokens", "sessions"):
        op.drop_table(table)

"""Summaries keep the peak risk, the calibrated P(wrong), the profile and the sequence scores.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("summaries") as batch:
        # sessions summarised before this revision: their peak is not known; the final level is the best floor
        batch.add_column(sa.Column("peak_risk", sa.String(16), nullable=False, server_default="safe"))
        batch.add_column(sa.Column("p_wrong", sa.Double(), nullable=True))
        batch.add_column(sa.Column("profile", sa.String(256), nullable=True))
        batch.add_column(sa.Column("answer_scores", JSONType, nullable=True))
        batch.add_column(sa.Column("scores", JSONType, nullable=True))
    op.execute("UPDATE summaries SET peak_risk = final_risk")


def downgrade() -> None:
    with op.batch_alter_table("summaries") as batch:
        for column in ("scores", "answer_scores", "profile", "p_wrong", "peak_risk"):
            batch.drop_column(column)

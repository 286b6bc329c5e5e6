"""Summaries name their counts for what they are: firings_by_rule and alerts_sent_by_rule.

``alerts_by_rule`` counted the tokens each rule fired on; it stays (the stream contract keeps it as a
deprecated alias) and ``firings_by_rule`` holds the same counts. Rows from before this revision have
null in both new columns: reading them, ``firings_by_rule`` comes from ``alerts_by_rule`` and
``alerts_sent_by_rule`` is unknown (null).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("summaries") as batch:
        batch.add_column(sa.Column("firings_by_rule", JSONType, nullable=True))
        batch.add_column(sa.Column("alerts_sent_by_rule", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("summaries") as batch:
        batch.drop_column("alerts_sent_by_rule")
        batch.drop_column("firings_by_rule")

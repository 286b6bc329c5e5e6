"""Alerts keep every rule that fired on their token; risk changes keep their evidence.

One JSON column, ``detail``: for an alert ``{"rules": [...], "findings": [...]}``, for a risk change
``{"evidence": ..., "p_wrong": ..., "profile": ...}``. Null in rows from before this revision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("detail", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("detail")

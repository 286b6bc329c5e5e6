"""Sessions keep the highest risk level they reached, so that lists can filter and sort by it.

One integer column, ``peak_rank``: the index of the level in ``RISK_LEVELS`` (0 safe … 3 emergency),
raised by the recorder as risk changes arrive and never lowered. Rows from before this revision are
backfilled from their risk changes in ``alerts``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_LEVELS = ("safe", "warning", "critical", "emergency")


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("peak_rank", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_sessions_peak_rank", ["peak_rank"])
    rank = " ".join(f"WHEN '{level}' THEN {i}" for i, level in enumerate(_LEVELS))
    op.execute(
        "UPDATE sessions SET peak_rank = COALESCE(("
        f"SELECT MAX(CASE alerts.level {rank} ELSE 0 END) FROM alerts "
        "WHERE alerts.session_id = sessions.session_id AND alerts.kind = 'risk'), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_peak_rank")
        batch.drop_column("peak_rank")

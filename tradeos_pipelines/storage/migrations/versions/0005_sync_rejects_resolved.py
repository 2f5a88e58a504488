"""sync_rejects.resolved_at: a later good version of a rejected row closes its reject

A reject stays open until 1C sends the same row (same 1C id, same entity, same integration)
in a form that commits, or a successful full pass no longer rejects it; then ``resolved_at``
and ``resolved_by_sync_log_id`` say when and by which sync. Open rejects per integration are
what the API lists for someone to fix in 1C.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sync_rejects", sa.Column("resolved_at", sa.DateTime(timezone=True)))
    op.add_column("sync_rejects", sa.Column("resolved_by_sync_log_id", sa.BigInteger()))
    # Open rejects are looked up by 1C id when a sync commits, and listed per sync.
    op.create_index(
        "ix_sync_rejects_open",
        "sync_rejects",
        ["onec_id"],
        postgresql_where=sa.text("resolved_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_sync_rejects_open", table_name="sync_rejects")
    op.drop_column("sync_rejects", "resolved_by_sync_log_id")
    op.drop_column("sync_rejects", "resolved_at")

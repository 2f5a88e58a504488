"""integrations.retry_budget_seconds: how long one call to 1C keeps retrying

A 1C cluster restart, a licence shortage or a web-server reload lasts 30–120 s; the client
used to give up after four attempts within about two seconds. Each call now retries by time,
up to this many seconds (default 120), configurable per integration.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "integrations",
        sa.Column(
            "retry_budget_seconds",
            sa.Numeric(precision=8, scale=2),
            server_default="120",
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("integrations", "retry_budget_seconds")

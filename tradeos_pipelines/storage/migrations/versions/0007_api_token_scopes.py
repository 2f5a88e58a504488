"""api_tokens.scopes: what a token may do (admin, read, webhook:<integration>)

Space-separated scope names. Existing tokens keep doing everything (``admin``), as before.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_tokens",
        sa.Column("scopes", sa.Text(), nullable=False, server_default=sa.text("'admin'")),
    )


def downgrade() -> None:
    op.drop_column("api_tokens", "scopes")

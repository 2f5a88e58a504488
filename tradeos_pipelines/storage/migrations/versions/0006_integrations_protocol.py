"""integrations.protocol and integrations.options: how TradeOS talks to each 1C

An integration now says which 1C protocol it speaks: ``http_service`` (the ``/hs/api``
service of docs/1c-http-service.md, what every existing integration uses) or ``odata`` (the
platform's standard OData interface of docs/1c-odata.md, which a stock 1C answers without any
1C code). ``options`` holds the protocol's settings as JSON; for OData the price type
(``price_type_key``) and the price register (``price_register``: 11.5 or 11.4).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "integrations",
        sa.Column("protocol", sa.String(16), nullable=False, server_default="http_service"),
    )
    op.add_column(
        "integrations",
        sa.Column(
            "options",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
    )
    op.create_check_constraint(
        "protocol", "integrations", "protocol IN ('http_service', 'odata')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_integrations_protocol"), "integrations", type_="check")
    op.drop_column("integrations", "options")
    op.drop_column("integrations", "protocol")

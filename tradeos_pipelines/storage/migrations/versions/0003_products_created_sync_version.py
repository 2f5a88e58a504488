"""products.created_sync_version: the sync that created a product

A full sync used to write a ``created`` row in ``product_history`` for every new product, a
copy of the product row itself (about a third of a 100,000-item first sync). The sync now
stamps the creating sync's version on the product instead, which is all a restore needs to
know (a product cannot be restored to a version from before it existed). Existing ``created``
history rows are kept and fill the new column.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("products", sa.Column("created_sync_version", sa.BigInteger(), nullable=True))
    op.execute(
        """
        UPDATE products p SET created_sync_version = h.sync_version
        FROM (
            SELECT product_id, min(sync_version) AS sync_version FROM product_history
            WHERE change = 'created' GROUP BY product_id
        ) h
        WHERE p.id = h.product_id
        """
    )


def downgrade() -> None:
    op.drop_column("products", "created_sync_version")

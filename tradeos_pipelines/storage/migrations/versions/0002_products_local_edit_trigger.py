"""products: track TradeOS edits (local_modified_at) with a trigger

Any change of a business field that does not come from the sync engine (the sidecar, an
admin in psql, a restore) stamps ``local_modified_at``, so the sync's three-way conflict check
sees every TradeOS edit without the editors' cooperation. The sync engine marks its own
transaction with ``SET LOCAL tradeos.syncing = 'on'``; the trigger's WHEN clause skips those
rows without calling PL/pgSQL, so a 100,000-row sync pays nothing for it.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Keep in step with tradeos_pipelines.engine.fields.PRODUCT_FIELDS.
_FIELDS = "code, article, name, full_name, unit, group_onec_id, price, vat, barcodes"
_OLD = ", ".join(f"OLD.{f.strip()}" for f in _FIELDS.split(","))
_NEW = ", ".join(f"NEW.{f.strip()}" for f in _FIELDS.split(","))


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION products_track_local_edit() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF ({_NEW}) IS DISTINCT FROM ({_OLD}) THEN
                NEW.local_modified_at := now();
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER products_track_local_edit
        BEFORE UPDATE ON products
        FOR EACH ROW
        WHEN (coalesce(current_setting('tradeos.syncing', true), '') <> 'on')
        EXECUTE FUNCTION products_track_local_edit()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS products_track_local_edit ON products")
    op.execute("DROP FUNCTION IF EXISTS products_track_local_edit()")

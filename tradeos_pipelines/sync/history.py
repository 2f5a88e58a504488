"""Putting a product back to its values at an earlier sync version."""

from __future__ import annotations

from sqlalchemy import text

from tradeos_pipelines.db.engine import get_engine
from tradeos_pipelines.sync.connection import resolve_database_url
from tradeos_pipelines.sync.fields import assignments_from_json
from tradeos_pipelines.sync.result import VersionNotFound

_RESTORE_SQL = f"""
UPDATE products p SET {assignments_from_json("h.current")}
FROM (
    SELECT current FROM product_history
    WHERE product_id = :product AND sync_version <= :version
    ORDER BY sync_version DESC, id DESC LIMIT 1
) h
WHERE p.id = :product
"""


def restore_product_version(
    product_id: int, sync_version: int, *, database_url: str | None = None
) -> None:
    """Give a product the field values it had after sync ``sync_version`` committed.

    The values come from the newest ``product_history`` row at or before that version. The
    restore is a TradeOS edit (the trigger stamps ``local_modified_at``), so the next sync
    treats it like any other: kept while 1C does not change the field, a conflict when it does.
    ``is_active`` is not restored: it follows 1C's deletion mark.
    """
    engine = get_engine(resolve_database_url(database_url))
    with engine.begin() as conn:
        restored = conn.execute(
            text(_RESTORE_SQL), {"product": product_id, "version": sync_version}
        ).rowcount
    if restored != 1:
        raise VersionNotFound(
            f"product {product_id} does not exist or has no history at or before "
            f"sync version {sync_version}"
        )

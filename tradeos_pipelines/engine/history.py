"""Putting a product back to its values at an earlier sync version."""

from __future__ import annotations

from sqlalchemy import text

from tradeos_pipelines.engine.connection import resolve_database_url
from tradeos_pipelines.engine.fields import assignments_from_json
from tradeos_pipelines.engine.result import VersionNotFound
from tradeos_pipelines.storage.database import get_engine

# The values after sync :version, newest source first: the ``current`` of the last change at or
# before it; else, if the product existed then, the ``previous`` of the first change after it
# (nothing from 1C changed the product in between); else what 1C sent (no change since).
_RESTORE_SQL = f"""
UPDATE products p SET {assignments_from_json("h.snapshot")}
FROM (
    SELECT coalesce(
        (SELECT current FROM product_history
         WHERE product_id = :product AND sync_version <= :version
         ORDER BY sync_version DESC, id DESC LIMIT 1),
        CASE WHEN pr.created_sync_version <= :version THEN coalesce(
            (SELECT previous FROM product_history
             WHERE product_id = :product AND sync_version > :version
             ORDER BY sync_version, id LIMIT 1),
            pr.onec_values)
        END
    ) AS snapshot
    FROM products pr WHERE pr.id = :product
) h
WHERE p.id = :product AND h.snapshot IS NOT NULL
"""


def restore_product_version(
    product_id: int, sync_version: int, *, database_url: str | None = None
) -> None:
    """Give a product the field values it had after sync ``sync_version`` committed.

    The values come from the newest ``product_history`` row at or before that version (its
    ``current``). A product's creation writes no history row, so for a version between its
    creation (``products.created_sync_version``) and its first change the values are that
    change's ``previous`` (TradeOS edits made before it included), or, when no sync has
    changed the product since, what 1C last sent (``onec_values``). The restore is a TradeOS
    edit (the trigger stamps ``local_modified_at``), so the next sync treats it like any other:
    kept while 1C does not change the field, a conflict when it does. ``is_active`` is not
    restored: it follows 1C's deletion mark.
    """
    engine = get_engine(resolve_database_url(database_url))
    with engine.begin() as conn:
        restored = conn.execute(
            text(_RESTORE_SQL), {"product": product_id, "version": sync_version}
        ).rowcount
    if restored != 1:
        raise VersionNotFound(
            f"product {product_id} does not exist or did not exist yet at sync version "
            f"{sync_version}"
        )

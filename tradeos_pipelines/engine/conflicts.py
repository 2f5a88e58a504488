"""Settling a conflict kept for a person (``conflict_policy = manual``)."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import text

from tradeos_pipelines.engine.connection import resolve_database_url
from tradeos_pipelines.engine.fields import PRODUCT_FIELDS, assignments_from_json, fields_json
from tradeos_pipelines.engine.result import ConflictNotFound, ConflictNotOpen
from tradeos_pipelines.storage.database import get_engine


def resolve_conflict(
    conflict_id: int,
    resolution: Literal["onec", "tradeos"],
    *,
    database_url: str | None = None,
) -> None:
    """Settle an open conflict: ``onec`` takes 1C's value, ``tradeos`` keeps TradeOS's.

    Taking 1C's value counts as the sync's write (not a TradeOS edit); once a product holds
    what 1C last sent in every field it is no longer marked as edited in TradeOS.
    """
    if resolution not in ("onec", "tradeos"):
        raise ValueError(f"resolution must be 'onec' or 'tradeos', not {resolution!r}")
    engine = get_engine(resolve_database_url(database_url))
    with engine.begin() as conn:
        row = conn.execute(
            text(
                "SELECT integration_id, entity, onec_id, field, status FROM sync_conflicts "
                "WHERE id = :id FOR UPDATE"
            ),
            {"id": conflict_id},
        ).one_or_none()
        if row is None:
            raise ConflictNotFound(f"conflict {conflict_id} does not exist")
        if row.status != "open":
            raise ConflictNotOpen(f"conflict {conflict_id} is already {row.status}")
        if row.field not in PRODUCT_FIELDS:
            raise ValueError(f"conflict {conflict_id} names an unknown field {row.field!r}")
        if resolution == "onec":
            conn.execute(text("SET LOCAL tradeos.syncing = 'on'"))
            # products.onec_values holds 1C's latest value (a later sync may have moved it on).
            conn.execute(
                text(
                    f"UPDATE products SET {assignments_from_json('onec_values', (row.field,))} "
                    "WHERE integration_id = :integration AND onec_id = :onec_id"
                ),
                {"integration": row.integration_id, "onec_id": row.onec_id},
            )
            conn.execute(
                text(
                    "UPDATE products p SET local_modified_at = NULL "
                    "WHERE integration_id = :integration AND onec_id = :onec_id "
                    f"AND {fields_json('p')} = p.onec_values"
                ),
                {"integration": row.integration_id, "onec_id": row.onec_id},
            )
        conn.execute(
            text(
                "UPDATE sync_conflicts SET status = 'resolved', resolution = :resolution, "
                "resolved_at = now() WHERE id = :id"
            ),
            {"resolution": resolution, "id": conflict_id},
        )

"""Open rejects of an integration: what someone has to fix in 1C."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from api.schemas.reject import OpenReject, OpenRejects
from tradeos_pipelines.core.integration import IntegrationNotFound
from tradeos_pipelines.storage.tables import Integration

# One row per rejected 1C row: rejects of the same row in several syncs are one thing to fix.
# Rows without a 1C id cannot be told apart and are listed one by one.
_OPEN_SQL = """
WITH open AS (
    SELECT r.id, l.entity, r.onec_id, r.reason, r.payload, r.sync_log_id, r.created_at,
        coalesce(r.onec_id, 'reject:' || r.id) AS row_key
    FROM sync_rejects r JOIN sync_logs l ON l.id = r.sync_log_id
    WHERE l.integration_id = :integration AND r.resolved_at IS NULL
        AND (CAST(:entity AS text) IS NULL OR l.entity = :entity)
), grouped AS (
    SELECT DISTINCT ON (entity, row_key) id, entity, onec_id, reason, payload, sync_log_id,
        created_at AS last_rejected_at,
        min(created_at) OVER w AS first_rejected_at, count(*) OVER w AS times_rejected
    FROM open
    WINDOW w AS (PARTITION BY entity, row_key)
    ORDER BY entity, row_key, id DESC
)
SELECT *, count(*) OVER () AS total FROM grouped ORDER BY last_rejected_at DESC, id DESC
LIMIT :limit
"""


_COUNT_SQL = """
SELECT l.entity, count(DISTINCT coalesce(r.onec_id, 'reject:' || r.id))
FROM sync_rejects r JOIN sync_logs l ON l.id = r.sync_log_id
WHERE l.integration_id = :integration AND r.resolved_at IS NULL
GROUP BY l.entity
"""


def open_reject_counts(session: Session, integration_id: str) -> dict[str, int]:
    """Open rejected rows per entity (one per 1C row), for the integration's health."""
    rows = session.execute(text(_COUNT_SQL), {"integration": integration_id}).all()
    return {entity: int(count) for entity, count in rows}


def list_open_rejects(
    session: Session, integration_id: str, *, entity: str | None, limit: int
) -> OpenRejects:
    """The integration's open rejects, newest first, one per rejected 1C row."""
    if session.get(Integration, integration_id) is None:
        raise IntegrationNotFound(f"integration {integration_id!r} does not exist")
    rows = session.execute(
        text(_OPEN_SQL), {"integration": integration_id, "entity": entity, "limit": limit}
    ).mappings()
    data, total = [], 0
    for row in rows:
        total = row["total"]
        data.append(
            OpenReject(
                id=row["id"],
                entity=row["entity"],
                onec_id=row["onec_id"],
                reason=row["reason"],
                payload=row["payload"],
                sync_log_id=row["sync_log_id"],
                first_rejected_at=row["first_rejected_at"],
                last_rejected_at=row["last_rejected_at"],
                times_rejected=row["times_rejected"],
            )
        )
    return OpenRejects(data=data, count=len(data), total=total)

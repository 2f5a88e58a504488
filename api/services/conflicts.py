"""Data conflicts kept for a person (``manual`` policy) and their resolution."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.pagination import decode_cursor, page
from api.schemas.conflict import ConflictPublic, ConflictsPublic
from tradeos_pipelines.db.models import SyncConflict


class ConflictNotFound(LookupError):
    """No conflict has this id."""


def list_conflicts(
    session: Session,
    *,
    status: str | None,
    integration_id: str | None,
    entity: str | None,
    limit: int,
    cursor: str | None,
) -> ConflictsPublic:
    """Newest first, filtered, one page."""
    query = select(SyncConflict).order_by(SyncConflict.id.desc()).limit(limit + 1)
    if status:
        query = query.where(SyncConflict.status == status)
    if integration_id:
        query = query.where(SyncConflict.integration_id == integration_id)
    if entity:
        query = query.where(SyncConflict.entity == entity)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(SyncConflict.id < after)
    rows, next_cursor = page(list(session.scalars(query)), limit, lambda r: r.id)
    return ConflictsPublic(
        data=[ConflictPublic.model_validate(r) for r in rows],
        count=len(rows),
        next_cursor=next_cursor,
    )


def get_conflict(session: Session, conflict_id: int) -> ConflictPublic:
    row = session.get(SyncConflict, conflict_id)
    if row is None:
        raise ConflictNotFound(f"conflict {conflict_id} does not exist")
    return ConflictPublic.model_validate(row)

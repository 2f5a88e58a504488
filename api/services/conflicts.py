"""Data conflicts kept for a person (``manual`` policy) and their resolution."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.core.pagination import newest_first
from api.schemas.conflict import ConflictPublic, ConflictsPublic
from tradeos_pipelines.engine import resolve_conflict
from tradeos_pipelines.engine.result import ConflictNotFound
from tradeos_pipelines.storage.database import session_scope
from tradeos_pipelines.storage.tables import SyncConflict


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
    rows, next_cursor = newest_first(
        session,
        SyncConflict,
        limit=limit,
        cursor=cursor,
        status=status,
        integration_id=integration_id,
        entity=entity,
    )
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


def resolve(conflict_id: int, resolution: str) -> ConflictPublic:
    """Settle a conflict through the engine (it writes the product); the settled conflict."""
    with session_scope() as session:
        get_conflict(session, conflict_id)  # a clear 404 before the engine is asked
    resolve_conflict(conflict_id, resolution)  # type: ignore[arg-type]
    with session_scope() as session:
        return get_conflict(session, conflict_id)

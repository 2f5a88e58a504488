"""``/api/v1/conflicts``: list and resolve data conflicts."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool

from api.core.deps import SessionDep
from api.core.pagination import Cursor, Limit
from api.schemas.conflict import ConflictPublic, ConflictResolve, ConflictsPublic
from api.services import conflicts as service
from tradeos_pipelines.engine import ConflictNotFound, ConflictNotOpen
from tradeos_pipelines.engine import resolve_conflict as settle
from tradeos_pipelines.storage.database import session_scope

router = APIRouter(prefix="/conflicts", tags=["conflicts"])


@router.get("", response_model=ConflictsPublic)
def list_conflicts(
    session: SessionDep,
    status: Literal["open", "resolved", "auto"] | None = None,
    integration_id: str | None = None,
    entity: str | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ConflictsPublic:
    """Conflicts, newest first (``status=open`` for those waiting for a person)."""
    return service.list_conflicts(
        session,
        status=status,
        integration_id=integration_id,
        entity=entity,
        limit=limit,
        cursor=cursor,
    )


@router.post(
    "/{conflict_id}/resolve",
    response_model=ConflictPublic,
    responses={
        404: {"description": "No such conflict"},
        409: {"description": "Already resolved"},
    },
)
async def resolve_conflict(conflict_id: int, body: ConflictResolve) -> ConflictPublic:
    """Settle a conflict: ``onec`` takes 1C's value, ``tradeos`` keeps TradeOS's."""

    def run() -> ConflictPublic:
        with session_scope() as session:
            service.get_conflict(session, conflict_id)
        settle(conflict_id, body.resolution)
        with session_scope() as session:
            return service.get_conflict(session, conflict_id)

    try:
        return await run_in_threadpool(run)
    except (service.ConflictNotFound, ConflictNotFound) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except ConflictNotOpen as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None

"""``/api/v1/conflicts``: list and resolve data conflicts."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.core.deps import in_session
from api.core.pagination import Cursor, Limit
from api.schemas.conflict import ConflictPublic, ConflictResolve, ConflictsPublic
from api.services import conflicts as service

router = APIRouter(prefix="/conflicts", tags=["conflicts"])


@router.get("", response_model=ConflictsPublic)
async def list_conflicts(
    status: Literal["open", "resolved", "auto"] | None = None,
    integration_id: str | None = None,
    entity: str | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ConflictsPublic:
    """Conflicts, newest first (``status=open`` for those waiting for a person)."""
    return await in_session(
        lambda session: service.list_conflicts(
            session,
            status=status,
            integration_id=integration_id,
            entity=entity,
            limit=limit,
            cursor=cursor,
        )
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
    return await run_in_threadpool(service.resolve, conflict_id, body.resolution)

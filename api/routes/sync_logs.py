"""``/api/v1/sync-logs`` and ``/api/v1/integrations/{id}/logs``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.core.deps import in_session
from api.core.pagination import Cursor, Limit
from api.schemas.sync import IntegrationLogsPublic, SyncLogDetail, SyncLogsPublic
from api.services import logs
from tradeos_pipelines.core.vocabulary import LoggedEntity, SyncStatus

router = APIRouter(tags=["logs"])


@router.get("/sync-logs", response_model=SyncLogsPublic)
async def list_sync_logs(
    integration_id: str | None = None,
    status: SyncStatus | None = None,
    entity: LoggedEntity | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SyncLogsPublic:
    """Entity syncs, newest first."""
    return await in_session(
        lambda session: logs.list_sync_logs(
            session,
            integration_id=integration_id,
            status=status,
            entity=entity,
            limit=limit,
            cursor=cursor,
        )
    )


@router.get(
    "/sync-logs/{sync_log_id}",
    response_model=SyncLogDetail,
    responses={404: {"description": "No such sync log"}},
)
async def read_sync_log(sync_log_id: int) -> SyncLogDetail:
    """One sync with the rows 1C sent that could not be taken."""
    return await in_session(lambda session: logs.get_sync_log(session, sync_log_id))


@router.get(
    "/integrations/{integration_id}/logs",
    response_model=IntegrationLogsPublic,
    responses={404: {"description": "No such integration"}},
)
async def list_integration_logs(
    integration_id: str,
    status_code: Annotated[int | None, Query(ge=100, le=599)] = None,
    errors_only: Annotated[
        bool, Query(description="Only failed attempts (error, no answer, or HTTP ≥ 400)")
    ] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> IntegrationLogsPublic:
    """Every HTTP attempt to this integration's 1C, newest first."""
    return await in_session(
        lambda session: logs.list_integration_logs(
            session,
            integration_id,
            status_code=status_code,
            errors_only=errors_only,
            limit=limit,
            cursor=cursor,
        )
    )

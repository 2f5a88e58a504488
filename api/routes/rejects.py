"""``/api/v1/integrations/{id}/rejects``: rows 1C sent that could not be taken, still open."""

from __future__ import annotations

from fastapi import APIRouter

from api.core.deps import in_session
from api.core.pagination import Limit
from api.schemas.reject import OpenRejects
from api.services import rejects as service
from tradeos_pipelines.core.vocabulary import LoggedEntity

router = APIRouter(prefix="/integrations", tags=["integrations"])


@router.get(
    "/{integration_id}/rejects",
    response_model=OpenRejects,
    responses={404: {"description": "No such integration"}},
)
async def list_open_rejects(
    integration_id: str, entity: LoggedEntity | None = None, limit: Limit = 50
) -> OpenRejects:
    """Open rejects, newest first, one per 1C row: fix them in 1C; the next sync that reads a
    good version of the row closes its reject. An unknown integration is a 404 (the shared
    handler of ``IntegrationNotFound``)."""
    return await in_session(
        lambda session: service.list_open_rejects(
            session, integration_id, entity=entity, limit=limit
        )
    )

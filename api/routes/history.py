"""``/api/v1/integrations/{id}/products/{onec_id}/history`` and ``/integrations/{id}/restore``.

Only HTTP here: the engine (:mod:`tradeos_pipelines.engine.restore`) reads the history and
plans or applies the restore.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool

from api.core.deps import SessionDep
from api.schemas.history import ProductHistoryPublic, RestorePublic, RestoreRequest
from api.services import integrations as integration_service
from tradeos_pipelines.core.integration import IntegrationNotFound
from tradeos_pipelines.engine.restore import (
    ProductNotFound,
    RestoreRefused,
    UnknownVersion,
    product_history,
    restore_integration,
)
from tradeos_pipelines.storage.database import session_scope

router = APIRouter(prefix="/integrations", tags=["history"])


@router.get(
    "/{integration_id}/products/{onec_id}/history",
    response_model=ProductHistoryPublic,
    responses={404: {"description": "No such integration or product"}},
)
def read_product_history(
    integration_id: str, onec_id: uuid.UUID, session: SessionDep
) -> dict[str, Any]:
    """Which sync changed which field of the product from what to what, oldest first."""
    try:
        integration_service.get_integration(session, integration_id)
        return product_history(session, integration_id, onec_id)
    except (IntegrationNotFound, ProductNotFound) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None


@router.post(
    "/{integration_id}/restore",
    response_model=RestorePublic,
    responses={
        404: {"description": "No such integration, or not one of its sync versions"},
        409: {"description": "A sync of the integration is running"},
    },
)
async def restore(integration_id: str, body: RestoreRequest) -> dict[str, Any]:
    """Put every product back to its values after ``to_version`` (``dry_run``: only report).

    Applied, it is a new sync version logged in ``sync_logs`` (``run_id`` ``restore:<version>``).
    """

    def run() -> dict[str, Any]:
        with session_scope() as session:
            integration_service.get_integration(session, integration_id)
        return restore_integration(integration_id, body.to_version, dry_run=body.dry_run).as_dict()

    try:
        return await run_in_threadpool(run)
    except (IntegrationNotFound, UnknownVersion) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except RestoreRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None

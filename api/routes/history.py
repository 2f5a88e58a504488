"""``/api/v1/integrations/{id}/products/{onec_id}/history`` and ``/integrations/{id}/restore``.

Only HTTP here: the engine (:mod:`tradeos_pipelines.engine.restore`) reads the history and
plans or applies the restore.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.core.deps import in_session
from api.schemas.history import ProductHistoryPublic, RestorePublic, RestoreRequest
from api.services import history

router = APIRouter(prefix="/integrations", tags=["history"])


@router.get(
    "/{integration_id}/products/{onec_id}/history",
    response_model=ProductHistoryPublic,
    responses={404: {"description": "No such integration or product"}},
)
async def read_product_history(integration_id: str, onec_id: uuid.UUID) -> dict[str, Any]:
    """Which sync changed which field of the product from what to what, oldest first."""
    return await in_session(lambda session: history.read_history(session, integration_id, onec_id))


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
    return await run_in_threadpool(
        history.restore, integration_id, body.to_version, dry_run=body.dry_run
    )

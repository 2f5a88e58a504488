"""Every REST router, gathered; all but health require a bearer token."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.core.deps import require_token
from api.core.query import reject_unknown_query
from api.routes import (
    alerts,
    config,
    conflicts,
    health,
    history,
    integrations,
    rejects,
    stats,
    sync_logs,
    webhooks,
)

api_router = APIRouter(dependencies=[Depends(reject_unknown_query)])
api_router.include_router(health.router)

protected = APIRouter(dependencies=[Depends(require_token)])
for module in (
    integrations,
    rejects,
    sync_logs,
    stats,
    conflicts,
    webhooks,
    alerts,
    history,
    config,
):
    protected.include_router(module.router)
api_router.include_router(protected)

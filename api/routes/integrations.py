"""``/api/v1/integrations``: CRUD, enable/disable, test connection, sync now, health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from api.core.deps import RedisDep, RuntimeDep, in_session
from api.schemas.integration import (
    ConnectionTest,
    IntegrationCreate,
    IntegrationPublic,
    IntegrationsPublic,
    IntegrationUpdate,
)
from api.schemas.sync import IntegrationHealth, SyncLaunched, SyncNow
from api.services import integration_health, onec_checks
from api.services import integrations as service
from tradeos_pipelines.storage.integrations import load_integration

router = APIRouter(prefix="/integrations", tags=["integrations"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such integration"}}


@router.get("", response_model=IntegrationsPublic)
async def list_integrations() -> IntegrationsPublic:
    """Every integration (secrets masked)."""
    return await in_session(service.list_public)


@router.post(
    "",
    response_model=IntegrationPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The id is taken"}},
)
async def create_integration(body: IntegrationCreate, redis: RedisDep) -> IntegrationPublic:
    """Add a 1C infobase. The answer shows the webhook secret once; later it is ``"***"``."""
    created = await in_session(lambda session: service.create_public(session, body))
    await service.announce_changed(redis, created.id, "created")
    return created


@router.get("/{integration_id}", response_model=IntegrationPublic, responses=NOT_FOUND)
async def read_integration(integration_id: str) -> IntegrationPublic:
    return await in_session(
        lambda session: service.to_public(service.get_integration(session, integration_id))
    )


@router.patch("/{integration_id}", response_model=IntegrationPublic, responses=NOT_FOUND)
async def update_integration(
    integration_id: str, body: IntegrationUpdate, redis: RedisDep
) -> IntegrationPublic:
    """Change fields; credentials given replace the stored ones."""
    updated = await in_session(
        lambda session: service.to_public(service.update_integration(session, integration_id, body))
    )
    await service.announce_changed(redis, integration_id, "updated")
    return updated


@router.delete("/{integration_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_integration(integration_id: str, redis: RedisDep) -> Response:
    """Delete the integration with its products, stock, orders, logs and conflicts."""
    await in_session(lambda session: service.delete_integration(session, integration_id))
    await service.announce_changed(redis, integration_id, "deleted")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{integration_id}/enable", response_model=IntegrationPublic, responses=NOT_FOUND)
async def enable_integration(integration_id: str, redis: RedisDep) -> IntegrationPublic:
    """Let schedules, sensors and webhooks sync this integration."""
    enabled = await in_session(
        lambda session: service.to_public(service.set_enabled(session, integration_id, True))
    )
    await service.announce_changed(redis, integration_id, "enabled")
    return enabled


@router.post("/{integration_id}/disable", response_model=IntegrationPublic, responses=NOT_FOUND)
async def disable_integration(integration_id: str, redis: RedisDep) -> IntegrationPublic:
    """Stop scheduled and sensor-driven syncs of this integration."""
    disabled = await in_session(
        lambda session: service.to_public(service.set_enabled(session, integration_id, False))
    )
    await service.announce_changed(redis, integration_id, "disabled")
    return disabled


@router.post(
    "/{integration_id}/test-connection", response_model=ConnectionTest, responses=NOT_FOUND
)
async def test_connection(integration_id: str, redis: RedisDep) -> ConnectionTest:
    """Call 1C's ``/hs/api/health`` with the stored credentials: latency and 1C version."""
    config = await in_session(lambda session: load_integration(session, integration_id))
    return await onec_checks.test_connection(config, redis)


@router.post(
    "/{integration_id}/sync",
    response_model=SyncLaunched,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **NOT_FOUND,
        409: {"description": "The integration is disabled"},
        422: {"description": "An unknown entity"},
        502: {"description": "Dagster refused or could not be reached"},
    },
)
async def sync_now(integration_id: str, body: SyncNow, redis: RedisDep) -> SyncLaunched:
    """Start Dagster runs for this integration's partitions now."""
    return await service.sync_now(redis, integration_id, list(body.entities), full=body.full)


@router.get("/{integration_id}/health", response_model=IntegrationHealth, responses=NOT_FOUND)
async def integration_health_route(integration_id: str, runtime: RuntimeDep) -> IntegrationHealth:
    """Last sync per entity, circuit state, error streak, and the Dagster runs queued or
    running per entity (cached for a few seconds)."""
    dagster = runtime.watcher.instance if runtime.watcher is not None else None
    return await integration_health.cached_health(runtime.redis, integration_id, dagster)

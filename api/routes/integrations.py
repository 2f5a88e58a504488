"""``/api/v1/integrations``: CRUD, enable/disable, test connection, sync now, health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api.core.deps import RedisDep, SessionDep, in_session
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
from tradeos_pipelines.core.integration import IntegrationNotFound
from tradeos_pipelines.core.vocabulary import UnknownEntity
from tradeos_pipelines.launch import LaunchError, request_sync
from tradeos_pipelines.storage.database import session_scope
from tradeos_pipelines.storage.integrations import load_integration

router = APIRouter(prefix="/integrations", tags=["integrations"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such integration"}}


def _not_found(exc: IntegrationNotFound) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc))


@router.get("", response_model=IntegrationsPublic)
async def list_integrations() -> IntegrationsPublic:
    """Every integration (secrets masked)."""

    def read(session: Session) -> IntegrationsPublic:
        rows = service.list_integrations(session)
        return IntegrationsPublic(data=[service.to_public(r) for r in rows], count=len(rows))

    return await in_session(read)


@router.post(
    "",
    response_model=IntegrationPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The id is taken"}},
)
def create_integration(body: IntegrationCreate, session: SessionDep) -> IntegrationPublic:
    """Add a 1C infobase. The answer shows the webhook secret once; later it is ``"***"``."""
    try:
        row, webhook_secret = service.create_integration(session, body)
    except service.IntegrationExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return service.to_public(row, webhook_secret=webhook_secret)


@router.get("/{integration_id}", response_model=IntegrationPublic, responses=NOT_FOUND)
def read_integration(integration_id: str, session: SessionDep) -> IntegrationPublic:
    try:
        return service.to_public(service.get_integration(session, integration_id))
    except IntegrationNotFound as exc:
        raise _not_found(exc) from None


@router.patch("/{integration_id}", response_model=IntegrationPublic, responses=NOT_FOUND)
def update_integration(
    integration_id: str, body: IntegrationUpdate, session: SessionDep
) -> IntegrationPublic:
    """Change fields; credentials given replace the stored ones."""
    try:
        return service.to_public(service.update_integration(session, integration_id, body))
    except IntegrationNotFound as exc:
        raise _not_found(exc) from None


@router.delete("/{integration_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_integration(integration_id: str, session: SessionDep) -> Response:
    """Delete the integration with its products, stock, orders, logs and conflicts."""
    try:
        service.delete_integration(session, integration_id)
    except IntegrationNotFound as exc:
        raise _not_found(exc) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{integration_id}/enable", response_model=IntegrationPublic, responses=NOT_FOUND)
def enable_integration(integration_id: str, session: SessionDep) -> IntegrationPublic:
    """Let schedules, sensors and webhooks sync this integration."""
    try:
        return service.to_public(service.set_enabled(session, integration_id, True))
    except IntegrationNotFound as exc:
        raise _not_found(exc) from None


@router.post("/{integration_id}/disable", response_model=IntegrationPublic, responses=NOT_FOUND)
def disable_integration(integration_id: str, session: SessionDep) -> IntegrationPublic:
    """Stop scheduled and sensor-driven syncs of this integration."""
    try:
        return service.to_public(service.set_enabled(session, integration_id, False))
    except IntegrationNotFound as exc:
        raise _not_found(exc) from None


def _load(integration_id: str) -> Any:
    with session_scope() as session:
        return load_integration(session, integration_id)


@router.post(
    "/{integration_id}/test-connection", response_model=ConnectionTest, responses=NOT_FOUND
)
async def test_connection(integration_id: str, redis: RedisDep) -> ConnectionTest:
    """Call 1C's ``/hs/api/health`` with the stored credentials: latency and 1C version."""
    try:
        config = await run_in_threadpool(_load, integration_id)
    except IntegrationNotFound as exc:
        raise _not_found(exc) from None
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

    def launch() -> Any:
        with session_scope() as session:
            row = service.get_integration(session, integration_id)
            if not row.enabled:
                raise service.IntegrationDisabled(
                    f"integration {integration_id!r} is disabled; enable it first"
                )
        return request_sync(integration_id, list(body.entities), full=body.full, source="manual")

    try:
        launched = await run_in_threadpool(launch)
    except IntegrationNotFound as exc:
        raise _not_found(exc) from None
    except service.IntegrationDisabled as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except UnknownEntity as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    except LaunchError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=str(exc)) from None
    if launched.request_id is not None:
        await integration_health.forget(redis, integration_id)  # now shows it waiting
    return SyncLaunched(run_ids=launched.run_ids, request_id=launched.request_id)


@router.get("/{integration_id}/health", response_model=IntegrationHealth, responses=NOT_FOUND)
async def integration_health_route(integration_id: str, redis: RedisDep) -> IntegrationHealth:
    """Last sync per entity, circuit state and error streak (cached for a few seconds)."""
    try:
        return await integration_health.cached_health(redis, integration_id)
    except IntegrationNotFound as exc:
        raise _not_found(exc) from None

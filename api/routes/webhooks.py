"""``POST /api/v1/webhooks/1c/{id}``: 1C says what changed; a sync is queued.

Besides the bearer token every route needs, the body must carry the integration's HMAC
signature; a bad signature, a stale ``sent_at`` or a replayed body is refused and records
nothing (see docs/sidecar.md for the 1C side).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from api.core.deps import RuntimeDep
from api.schemas.sync import SyncLaunched
from api.services import integration_health, webhooks
from tradeos_pipelines.core.integration import IntegrationNotFound
from tradeos_pipelines.core.vocabulary import ENTITIES
from tradeos_pipelines.launch import request_sync
from tradeos_pipelines.sources.common.cache import invalidate
from tradeos_pipelines.storage.database import session_scope
from tradeos_pipelines.storage.integrations import load_integration

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["entities", "sent_at"],
                    "properties": {
                        "entities": {
                            "type": "array",
                            "items": {"enum": list(ENTITIES)},
                        },
                        "sent_at": {
                            "description": "ISO 8601 with time zone, or unix seconds",
                            "oneOf": [{"type": "string"}, {"type": "number"}],
                        },
                        "ids": {"type": "array", "items": {"type": "string"}},
                    },
                }
            }
        },
    },
    "parameters": [
        {
            "name": webhooks.SIGNATURE_HEADER,
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "sha256=<hex HMAC-SHA256 of the raw body with the webhook secret>",
        }
    ],
}


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message)


def _load(integration_id: str) -> Any:
    with session_scope() as session:
        return load_integration(session, integration_id)


@router.post(
    "/1c/{integration_id}",
    response_model=SyncLaunched,
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=_BODY_SCHEMA,
    responses={
        401: {"description": "Bad token, bad signature or stale sent_at"},
        404: {"description": "No such integration"},
        409: {"description": "Replayed body, or the integration is disabled"},
    },
)
async def onec_webhook(integration_id: str, request: Request, runtime: RuntimeDep) -> SyncLaunched:
    """Queue a sync of the entities 1C names and drop their cached 1C answers."""

    settings = runtime.settings
    body = await request.body()
    try:
        config = await run_in_threadpool(_load, integration_id)
    except IntegrationNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    if not config.webhook_secret:
        raise _unauthorized("this integration has no webhook secret; set one with PATCH")
    signature = request.headers.get(webhooks.SIGNATURE_HEADER)
    try:
        webhooks.verify_signature(config.webhook_secret, body, signature)
        notification = webhooks.parse_notification(
            body, max_skew_seconds=settings.webhook_max_skew_seconds, now=datetime.now(UTC)
        )
    except webhooks.WebhookRejected as exc:
        raise _unauthorized(str(exc)) from None
    if not config.enabled:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"integration {integration_id!r} is disabled"
        )
    # A body is accepted once: the same signed body again within the window is a replay.
    seen = webhooks.replay_key(settings.redis_namespace, integration_id, signature or "")
    if not await runtime.redis.set(seen, 1, nx=True, ex=2 * settings.webhook_max_skew_seconds):
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="this notification was already received"
        )
    try:
        launched = await run_in_threadpool(
            request_sync, integration_id, list(notification.entities), full=False, source="webhook"
        )
    except Exception:
        await runtime.redis.delete(seen)  # not taken: let 1C retry the same body
        raise
    for entity in notification.entities:
        await invalidate(runtime.redis, integration_id, entity, namespace=settings.redis_namespace)
    await integration_health.forget(runtime.redis, integration_id)  # now shows it waiting
    return SyncLaunched(run_ids=launched.run_ids, request_id=launched.request_id)

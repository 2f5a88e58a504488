"""``POST /api/v1/webhooks/1c/{id}``: 1C says what changed; a sync is queued.

Besides the bearer token every route needs, the body must carry the integration's HMAC
signature; a bad signature, a stale ``sent_at`` or a replayed body is refused and records
nothing (see docs/sidecar.md for the 1C side).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from api.core.deps import RuntimeDep
from api.schemas.sync import SyncLaunched
from api.services import webhooks
from tradeos_pipelines.core.vocabulary import ENTITIES

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
    body = await request.body()
    signature = request.headers.get(webhooks.SIGNATURE_HEADER)
    return await webhooks.receive(runtime, integration_id, body, signature)

"""``GET /metrics``: Prometheus text format, behind the same bearer token as the API.

Prometheus sends it with ``authorization: {type: Bearer, credentials_file: …}`` in the scrape
config (docs/monitoring.md). Computed by :mod:`api.services.metrics`.
"""

from __future__ import annotations

import weakref

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.core.deps import RuntimeDep, require_token
from api.core.runtime import Runtime
from api.services.metrics import MetricsCollector

router = APIRouter(tags=["monitoring"])

# One collector per runtime (per sidecar process): it keeps the 1C request counters.
_collectors: weakref.WeakKeyDictionary[Runtime, MetricsCollector] = weakref.WeakKeyDictionary()


@router.get(
    "/metrics",
    dependencies=[Depends(require_token)],
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        401: {"description": "Missing, invalid or revoked bearer token"},
    },
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Syncs, durations, rows, conflicts, breakers, 1C requests, WebSocket clients, streams."""
    collector = _collectors.get(runtime)
    if collector is None:
        collector = _collectors[runtime] = MetricsCollector(runtime)
    return Response(await collector.exposition(), media_type=CONTENT_TYPE_LATEST)

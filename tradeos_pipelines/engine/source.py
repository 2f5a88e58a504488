"""The 1C side of a sync: the integration's client, and its cache after a commit.

:func:`connect` is the one place a 1C client is made for a stored integration (syncs, the
change sensor, the sidecar's connection test): it wires the shared circuit breaker's events
to the event bus and the request log the caller keeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.core.scrub import scrubber_for
from tradeos_pipelines.engine.scrubbed import ScrubbedPublisher, ScrubbedRequestLog
from tradeos_pipelines.event_bus import AsyncRedisEventBus
from tradeos_pipelines.sources.common.cache import invalidate
from tradeos_pipelines.sources.common.ports import RequestLog
from tradeos_pipelines.sources.http_service.client import OneCClient
from tradeos_pipelines.storage.request_log import IntegrationLogWriter

if TYPE_CHECKING:
    from tradeos_pipelines.engine.runner import SyncRun

# The client caches answers per 1C entity; an export changes what GET /orders answers.
_CACHED_ENTITY = {"order_export": "orders"}


def connect(
    integration: IntegrationConfig,
    *,
    redis: aioredis.Redis,
    request_log: RequestLog | None = None,
    run_id: str | None = None,
) -> OneCClient:
    """A client of the integration's 1C; breaker state changes go to the event bus.

    What the client logs and publishes passes the integration's scrubber first: 1C may echo
    the credentials it was sent.
    """
    scrubber = scrubber_for(integration)
    return OneCClient.from_config(
        integration,
        redis=redis,
        request_log=ScrubbedRequestLog(request_log, scrubber) if request_log else None,
        publisher=ScrubbedPublisher(AsyncRedisEventBus(redis), scrubber),
        run_id=run_id,
    )


@asynccontextmanager
async def onec_client(sync: SyncRun) -> AsyncIterator[OneCClient]:
    """The integration's 1C client (shared breaker, every attempt logged under the run id)."""
    redis = aioredis.from_url(sync.settings.require_redis_url())
    request_log = IntegrationLogWriter(sync.database_url)
    try:
        async with connect(
            sync.integration, redis=redis, request_log=request_log, run_id=sync.run_id
        ) as client:
            yield client
    finally:
        await request_log.aclose()
        await redis.aclose()


async def invalidate_cache(sync: SyncRun) -> None:
    """Drop the client's cached answers for the entity just committed."""
    redis = aioredis.from_url(sync.settings.require_redis_url())
    try:
        await invalidate(redis, sync.integration_id, _CACHED_ENTITY.get(sync.entity, sync.entity))
    finally:
        await redis.aclose()

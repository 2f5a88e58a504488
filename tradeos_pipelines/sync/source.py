"""The 1C side of a sync: the integration's client, and its cache after a commit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from tradeos_pipelines.events import AsyncRedisEventBus
from tradeos_pipelines.onec.cache import invalidate
from tradeos_pipelines.onec.client import OneCClient
from tradeos_pipelines.onec.request_log import IntegrationLogWriter

if TYPE_CHECKING:
    from tradeos_pipelines.sync.engine import SyncRun

# The client caches answers per 1C entity; an export changes what GET /orders answers.
_CACHED_ENTITY = {"order_export": "orders"}


@asynccontextmanager
async def onec_client(sync: SyncRun) -> AsyncIterator[OneCClient]:
    """The integration's 1C client (shared breaker, every attempt logged under the run id)."""
    redis = aioredis.from_url(sync.settings.require_redis_url())
    request_log = IntegrationLogWriter(sync.database_url)
    try:
        async with OneCClient.from_config(
            sync.integration,
            redis=redis,
            request_log=request_log,
            publisher=AsyncRedisEventBus(redis),
            run_id=sync.run_id,
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

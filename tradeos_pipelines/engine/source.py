"""The 1C side of a sync: the integration's client, and its cache after a commit.

:func:`connect` is the one place a 1C client is made for a stored integration (syncs, the
change sensor, the sidecar's connection test): it wires the shared circuit breaker's events
to the event bus and the request log the caller keeps.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tradeos_pipelines.core.credentials import stored_credential_problems
from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.core.scrub import scrubber_for
from tradeos_pipelines.engine.scrubbed import ScrubbedPublisher, ScrubbedRequestLog
from tradeos_pipelines.event_bus import AsyncRedisEventBus
from tradeos_pipelines.sources.common.cache import invalidate
from tradeos_pipelines.sources.common.errors import OneCSettingsError
from tradeos_pipelines.sources.common.ports import RequestLog
from tradeos_pipelines.sources.common.transport import RetryPolicy
from tradeos_pipelines.sources.http_service.client import OneCClient
from tradeos_pipelines.sources.odata.client import ODataClient
from tradeos_pipelines.storage.request_log import IntegrationLogWriter

if TYPE_CHECKING:
    from tradeos_pipelines.engine.runner import SyncRun

log = logging.getLogger(__name__)

# The breaker and the cache give up on a Redis that does not answer within this long.
REDIS_TIMEOUT_S = 5.0

# The client caches answers per 1C entity; an export changes what GET /orders answers.
_CACHED_ENTITY = {"order_export": "orders"}

# What the engine sees of a 1C, whatever the protocol: the same calls and typed rows.
OneCSource = OneCClient | ODataClient


def connect(
    integration: IntegrationConfig,
    *,
    redis: aioredis.Redis,
    request_log: RequestLog | None = None,
    run_id: str | None = None,
    retry: RetryPolicy | None = None,
) -> OneCSource:
    """A client of the integration's 1C in its protocol (``integration.protocol``: the HTTP
    service or the standard OData interface); breaker state changes go to the event bus.

    Calls retry for the integration's ``retry_budget_seconds`` (a sync rides out a 1C
    restart); a caller someone waits on passes ``RetryPolicy.interactive()``. What the client
    logs and publishes passes the integration's scrubber first: 1C may echo the credentials
    it was sent.

    Raises :class:`OneCSettingsError` naming the field when a stored credential cannot travel
    in an HTTP header (saved before input was validated): a sync and a connection test then
    say what to fix instead of failing inside the HTTP library.
    """
    stored = stored_credential_problems(
        integration.api_key, integration.username, integration.password
    )
    if stored:
        raise OneCSettingsError(
            "; ".join(f"stored {field} {reason}" for field, reason in stored)
            + f"; set new credentials with PATCH /api/v1/integrations/{integration.id}",
            integration_id=integration.id,
        )
    options = {"retry": retry} if retry is not None else {}
    scrubber = scrubber_for(integration)
    factory = ODataClient if integration.protocol == "odata" else OneCClient
    return factory.from_config(
        integration,
        redis=redis,
        request_log=ScrubbedRequestLog(request_log, scrubber) if request_log else None,
        publisher=ScrubbedPublisher(AsyncRedisEventBus(redis), scrubber),
        run_id=run_id,
        **options,
    )


@asynccontextmanager
async def onec_client(sync: SyncRun) -> AsyncIterator[OneCSource]:
    """The integration's 1C client (shared breaker, every attempt logged under the run id)."""
    redis = _redis(sync)
    request_log = IntegrationLogWriter(sync.database_url)
    try:
        async with connect(
            sync.integration, redis=redis, request_log=request_log, run_id=sync.run_id
        ) as client:
            yield client
    except BaseException:
        # The sync's own failure is what sync_logs and the run must show: a request log that
        # cannot be written for the same reason (PostgreSQL gone) must not replace it.
        try:
            await request_log.aclose()
        except Exception as exc:
            log.error("could not write the request log of %s: %s", sync.integration_id, exc)
        raise
    else:
        await request_log.aclose()
    finally:
        await redis.aclose()


async def invalidate_cache(sync: SyncRun) -> None:
    """Drop the client's cached answers for the entity just committed (without Redis they
    expire with their TTL; the data is committed either way)."""
    redis = _redis(sync)
    try:
        await invalidate(redis, sync.integration_id, _CACHED_ENTITY.get(sync.entity, sync.entity))
    except (RedisError, OSError) as exc:
        log.warning(
            "could not drop the 1C cache of %s %s (Redis: %s); it expires with its TTL",
            sync.integration_id,
            sync.entity,
            type(exc).__name__,
        )
    finally:
        await redis.aclose()


def _redis(sync: SyncRun) -> aioredis.Redis:
    # Timeouts: a Redis that hangs (not only one that refuses) must not hang the sync.
    return aioredis.from_url(
        sync.settings.require_redis_url(),
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )

"""``test-connection``: one call to 1C's health endpoint through the project's 1C client."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from api.schemas.integration import ConnectionTest
from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.engine.source import connect
from tradeos_pipelines.sources.common.cache import invalidate
from tradeos_pipelines.sources.common.errors import OneCError
from tradeos_pipelines.sources.common.transport import RetryPolicy


def _without_secrets(message: str, config: IntegrationConfig) -> str:
    # The client's messages never carry credentials; this guards the API answer regardless.
    for secret in (config.api_key, config.password, config.webhook_secret):
        if secret:
            message = message.replace(secret, "***")
    return message


async def test_connection(config: IntegrationConfig, redis: aioredis.Redis) -> ConnectionTest:
    """Call ``/hs/api/health`` of the integration's 1C: latency and version, or the reason."""

    # The client caches /health; a connection test must really reach 1C (new credentials).
    await invalidate(redis, config.id, "health", namespace=get_settings().redis_namespace)
    started = time.perf_counter()
    try:
        # Someone waits on the answer: a few quick attempts, not a sync's retry budget.
        async with connect(config, redis=redis, retry=RetryPolicy.interactive()) as client:
            health = await client.health()
    except OneCError as exc:
        return ConnectionTest(
            ok=False,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            error=_without_secrets(str(exc), config),
        )
    return ConnectionTest(
        ok=True,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        version=health.version,
    )

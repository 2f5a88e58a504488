"""``test-connection``: one call to 1C's health endpoint through the project's 1C client."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from api.schemas.integration import ConnectionTest
from tradeos_pipelines.core.credentials import stored_credential_problems
from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.core.scrub import scrubber_for
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.engine.source import connect
from tradeos_pipelines.sources.common.cache import invalidate
from tradeos_pipelines.sources.common.errors import OneCError


async def test_connection(config: IntegrationConfig, redis: aioredis.Redis) -> ConnectionTest:
    """Call ``/hs/api/health`` of the integration's 1C: latency and version, or the reason."""

    stored = stored_credential_problems(config.api_key, config.username, config.password)
    if stored:
        # Saved before input was validated: the request could not even be built.
        return ConnectionTest(
            ok=False,
            latency_ms=0.0,
            error="; ".join(f"stored {field} {reason}" for field, reason in stored)
            + f"; set new credentials with PATCH /api/v1/integrations/{config.id}",
        )
    # The client caches /health; a connection test must really reach 1C (new credentials).
    await invalidate(redis, config.id, "health", namespace=get_settings().redis_namespace)
    started = time.perf_counter()
    try:
        async with connect(config, redis=redis) as client:
            health = await client.health()
    except OneCError as exc:
        return ConnectionTest(
            ok=False,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            error=scrubber_for(config)(str(exc)),
        )
    return ConnectionTest(
        ok=True,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        # 1C's own text: it may echo what it was sent, like any other 1C answer.
        version=scrubber_for(config)(health.version) if health.version else health.version,
    )

"""The health caches expire on their own (Redis TTL), not only when invalidated."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from api.services.integration_health import cache_key as integration_health_key
from api.services.integration_health import cached_health
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.sources.common.cache import cache_key
from tradeos_pipelines.sources.http_service.client import OneCClient

TTL = 1  # seconds: the smallest TRADEOS_HEALTH_CACHE_TTL_SECONDS allows


@pytest.fixture
def health_ttl(monkeypatch):
    monkeypatch.setenv("TRADEOS_HEALTH_CACHE_TTL_SECONDS", str(TTL))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
async def aredis(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _expired(redis: aioredis.Redis, key: str) -> None:
    """Wait (at most 10 s) until Redis itself expired ``key``."""
    for _ in range(200):
        if not await redis.exists(key):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{key} did not expire")


async def test_1c_health_is_asked_again_once_its_cache_expired(emulator, aredis, health_ttl):
    key = cache_key("main-1c", "health", "/hs/api/health")
    async with OneCClient(
        emulator.base_url, api_key="test-key", integration_id="main-1c", redis=aredis
    ) as client:
        await client.health()
        await client.health()
        assert emulator.control.counters()["requests"] == {"GET /hs/api/health": 1}
        assert await aredis.ttl(key) == TTL

        await _expired(aredis, key)
        await client.health()

    assert emulator.control.counters()["requests"] == {"GET /hs/api/health": 2}


async def test_integration_health_is_computed_again_once_its_cache_expired(
    make_integration, sql_session, aredis, health_ttl
):
    make_integration("main-1c")
    first = await cached_health(aredis, "main-1c")
    # A sync fails meanwhile: the cached status does not know yet …
    sql_session(
        "INSERT INTO sync_logs (integration_id, entity, status, finished_at, error) "
        "VALUES ('main-1c', 'nomenclature', 'failed', now(), '1C: HTTP 500')"
    )
    cached = await cached_health(aredis, "main-1c")
    assert (first.status, first.cached, cached.status, cached.cached) == (
        "never_synced",
        False,
        "never_synced",
        True,
    )
    assert await aredis.ttl(integration_health_key("main-1c")) == TTL

    # … until the cache expires on its own.
    await _expired(aredis, integration_health_key("main-1c"))
    fresh = await cached_health(aredis, "main-1c")

    assert (fresh.status, fresh.cached, fresh.error_streak) == ("failing", False, 1)
    assert fresh.checked_at > first.checked_at


@pytest.fixture
def sql_session(db):
    from sqlalchemy import text

    from tradeos_pipelines.storage.database import get_engine

    def run(query: str) -> None:
        with get_engine(db).begin() as conn:
            conn.execute(text(query))

    return run

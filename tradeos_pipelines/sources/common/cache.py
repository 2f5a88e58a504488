"""Redis cache of 1C GET answers used outside bulk syncs: health and single-page lookups.

Bulk paging is never cached (it must see 1C as it is). Keys are
``{namespace}:onec:cache:{integration_id}:{entity}:{digest of path and query}`` and hold the
answer body exactly as 1C sent it: no credentials are ever part of a key or a value. Entries
of an entity are dropped by :func:`invalidate` when a sync of it commits or a webhook reports
a change; they also expire after the integration's ``cache_ttl_seconds`` (health after
``settings.health_cache_ttl_seconds``). Without Redis the cache is a miss every time.
"""

from __future__ import annotations

import hashlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tradeos_pipelines.core import vocabulary
from tradeos_pipelines.core.settings import get_settings

log = logging.getLogger(__name__)

# What the client caches: health, and the three entities it reads.
ENTITIES = ("health", *vocabulary.ENTITIES)


def _prefix(integration_id: str, entity: str, namespace: str | None) -> str:
    return f"{namespace or get_settings().redis_namespace}:onec:cache:{integration_id}:{entity}:"


def cache_key(integration_id: str, entity: str, request: str, namespace: str | None = None) -> str:
    """The key of one cached answer (``request`` is the path with its query)."""
    digest = hashlib.blake2b(request.encode(), digest_size=12).hexdigest()
    return _prefix(integration_id, entity, namespace) + digest


class ResponseCache:
    """Cached answer bodies of one integration."""

    def __init__(
        self,
        redis: aioredis.Redis,
        integration_id: str,
        *,
        ttl_seconds: int,
        health_ttl_seconds: int | None = None,
        namespace: str | None = None,
    ) -> None:
        self._redis = redis
        self.integration_id = integration_id
        self.ttl_seconds = ttl_seconds
        self.health_ttl_seconds = health_ttl_seconds or get_settings().health_cache_ttl_seconds
        self._namespace = namespace

    async def get(self, entity: str, request: str) -> bytes | None:
        """The cached body, or ``None``."""
        key = cache_key(self.integration_id, entity, request, self._namespace)
        try:
            return await self._redis.get(key)
        except (RedisError, OSError) as exc:  # no cache without Redis: ask 1C
            log.warning("response cache unavailable (Redis: %s)", type(exc).__name__)
            return None

    async def put(self, entity: str, request: str, body: bytes) -> None:
        """Keep ``body`` for the entity's TTL (nothing when the TTL is 0)."""
        ttl = self.health_ttl_seconds if entity == "health" else self.ttl_seconds
        if ttl <= 0:
            return
        key = cache_key(self.integration_id, entity, request, self._namespace)
        try:
            await self._redis.set(key, body, ex=ttl)
        except (RedisError, OSError) as exc:
            log.warning("response cache unavailable (Redis: %s)", type(exc).__name__)


async def invalidate(
    redis: aioredis.Redis,
    integration_id: str,
    entity: str | None = None,
    *,
    namespace: str | None = None,
) -> int:
    """Drop cached answers of ``entity`` (every entity when ``None``); returns how many."""
    if entity is not None and entity not in ENTITIES:
        raise ValueError(f"unknown entity {entity!r}; one of {', '.join(ENTITIES)}")
    pattern = _prefix(integration_id, entity or "*", namespace) + "*"
    deleted = 0
    batch: list[bytes | str] = []
    async for key in redis.scan_iter(match=pattern, count=500):
        batch.append(key)
        if len(batch) >= 500:
            deleted += await redis.delete(*batch)
            batch.clear()
    if batch:
        deleted += await redis.delete(*batch)
    return deleted

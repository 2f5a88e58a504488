"""Operating status of one integration: last sync per entity, circuit, error streak, open
rejects per entity, and the entities whose sync request still waits for the Dagster daemon.

Computed from ``sync_logs`` and the 1C client's circuit breaker, then cached in Redis for
``health_cache_ttl_seconds`` so dashboards polling many integrations stay cheap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from api.schemas.sync import EntityHealth, IntegrationHealth
from api.services.logs import sync_log_public
from api.services.rejects import open_reject_counts
from tradeos_pipelines.core.integration import IntegrationNotFound
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.launch import waiting_entities
from tradeos_pipelines.sources.common.breaker import circuit_state
from tradeos_pipelines.storage.database import session_scope
from tradeos_pipelines.storage.tables import Integration, SyncLog

# Enough recent syncs to find each entity's last one and a meaningful error streak.
RECENT_SYNCS = 200


def cache_key(integration_id: str) -> str:
    return f"{get_settings().redis_namespace}:integration-health:{integration_id}"


def _from_database(integration_id: str) -> tuple[bool, dict[str, EntityHealth], int]:
    with session_scope() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise IntegrationNotFound(f"integration {integration_id!r} does not exist")
        recent = list(
            session.scalars(
                select(SyncLog)
                .where(SyncLog.integration_id == integration_id)
                .order_by(SyncLog.id.desc())
                .limit(RECENT_SYNCS)
            )
        )
        entities: dict[str, EntityHealth] = {}
        streak_open: dict[str, bool] = {}
        for row in recent:
            if row.status == "running":
                continue
            entry = entities.get(row.entity)
            if entry is None:
                entry = EntityHealth(
                    last_sync=sync_log_public(row), last_success_at=None, error_streak=0
                )
                entities[row.entity] = entry
                streak_open[row.entity] = True
            if row.status == "failed" and streak_open[row.entity]:
                entry.error_streak += 1
            else:
                streak_open[row.entity] = False
            if row.status in ("success", "partial") and entry.last_success_at is None:
                entry.last_success_at = row.finished_at
        # Rows to fix in 1C, per entity (a partial sync alone does not say whether they still are).
        for entity, count in open_reject_counts(session, integration_id).items():
            entry = entities.get(entity)
            if entry is None:
                entry = entities[entity] = EntityHealth(
                    last_sync=None, last_success_at=None, error_streak=0
                )
            entry.open_rejects = count
        # A request still waiting for the daemon: shown after a reload of the dashboard too.
        for entity in waiting_entities(session, integration_id):
            entry = entities.get(entity)
            if entry is None:
                entry = entities[entity] = EntityHealth(
                    last_sync=None, last_success_at=None, error_streak=0
                )
            entry.waiting = True
        overall = 0
        for row in recent:
            if row.status == "running":
                continue
            if row.status != "failed":
                break
            overall += 1
        return integration.enabled, entities, overall


async def _circuit(redis: aioredis.Redis, integration_id: str) -> dict[str, Any]:

    return await circuit_state(redis, integration_id, namespace=get_settings().redis_namespace)


async def compute_health(redis: aioredis.Redis, integration_id: str) -> IntegrationHealth:
    """The status now (no cache)."""
    enabled, entities, streak = await run_in_threadpool(_from_database, integration_id)
    circuit = await _circuit(redis, integration_id)
    if not enabled:
        status = "disabled"
    elif circuit.get("state") == "open":
        status = "circuit_open"
    elif not any(entity.last_sync for entity in entities.values()):
        status = "never_synced"
    elif streak or any(e.error_streak for e in entities.values()):
        status = "failing"
    else:
        status = "ok"
    return IntegrationHealth(
        integration_id=integration_id,
        enabled=enabled,
        status=status,
        entities=entities,
        circuit=circuit,
        error_streak=streak,
        checked_at=datetime.now(UTC),
    )


async def cached_health(redis: aioredis.Redis, integration_id: str) -> IntegrationHealth:
    """The status, from the Redis cache when fresh."""
    key = cache_key(integration_id)
    cached = await redis.get(key)
    if cached:
        health = IntegrationHealth.model_validate_json(cached)
        health.cached = True
        return health
    health = await compute_health(redis, integration_id)
    await redis.set(key, health.model_dump_json(), ex=get_settings().health_cache_ttl_seconds)
    return health


async def forget(redis: aioredis.Redis, integration_id: str) -> None:
    """Drop the cached status (the integration changed or was deleted)."""
    await redis.delete(cache_key(integration_id))

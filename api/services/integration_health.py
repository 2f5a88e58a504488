"""Operating status of one integration: last sync per entity, circuit, error streak, open
rejects per entity, the entities whose sync request still waits for the Dagster daemon, and
(when the sidecar reads the Dagster instance) the runs queued or running per entity.

Computed from ``sync_logs`` and the 1C client's circuit breaker, then cached in Redis for
``health_cache_ttl_seconds`` so dashboards polling many integrations stay cheap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from api.schemas.sync import EntityHealth, IntegrationHealth
from api.services.logs import sync_log_public
from api.services.rejects import open_reject_counts
from tradeos_pipelines.core.integration import IntegrationNotFound
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.core.vocabulary import TAG_ENTITY, TAG_INTEGRATION
from tradeos_pipelines.launch import waiting_entities
from tradeos_pipelines.sources.common.breaker import circuit_state
from tradeos_pipelines.storage.database import session_scope
from tradeos_pipelines.storage.tables import Integration, SyncLog

if TYPE_CHECKING:
    from dagster import DagsterInstance

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
        for entity, since in waiting_entities(session, integration_id).items():
            entry = entities.get(entity)
            if entry is None:
                entry = entities[entity] = EntityHealth(
                    last_sync=None, last_success_at=None, error_streak=0
                )
            entry.waiting = True
            entry.waiting_since = since
        overall = 0
        for row in recent:
            if row.status == "running":
                continue
            if row.status != "failed":
                break
            overall += 1
        return integration.enabled, entities, overall


def _dagster_runs(instance: DagsterInstance, integration_id: str) -> dict[str, dict[str, int]]:
    """entity → {"queued": n, "running": n}: this integration's unfinished Dagster runs."""
    from dagster import DagsterRunStatus, RunsFilter

    kinds = {
        DagsterRunStatus.QUEUED: "queued",
        DagsterRunStatus.NOT_STARTED: "queued",
        DagsterRunStatus.STARTING: "running",
        DagsterRunStatus.STARTED: "running",
    }
    counts: dict[str, dict[str, int]] = {}
    runs = instance.get_runs(
        RunsFilter(statuses=list(kinds), tags={TAG_INTEGRATION: integration_id})
    )
    for run in runs:
        entity = run.tags.get(TAG_ENTITY)
        if entity:
            entry = counts.setdefault(entity, {"queued": 0, "running": 0})
            entry[kinds[run.status]] += 1
    return counts


async def _circuit(redis: aioredis.Redis, integration_id: str) -> dict[str, Any]:
    # The transport scrubs what it gives the breaker (last_error, first_error).
    return await circuit_state(redis, integration_id, namespace=get_settings().redis_namespace)


async def compute_health(
    redis: aioredis.Redis, integration_id: str, dagster: DagsterInstance | None = None
) -> IntegrationHealth:
    """The status now (no cache); ``dagster`` adds the queued and running runs."""
    enabled, entities, streak = await run_in_threadpool(_from_database, integration_id)
    circuit = await _circuit(redis, integration_id)
    if dagster is not None:
        runs = await run_in_threadpool(_dagster_runs, dagster, integration_id)
        for entity, count in runs.items():
            entry = entities.get(entity)
            if entry is None:
                entry = entities[entity] = EntityHealth(
                    last_sync=None, last_success_at=None, error_streak=0
                )
            entry.queued_runs, entry.running_runs = count["queued"], count["running"]
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
        dagster_runs=dagster is not None,
        checked_at=datetime.now(UTC),
    )


async def cached_health(
    redis: aioredis.Redis, integration_id: str, dagster: DagsterInstance | None = None
) -> IntegrationHealth:
    """The status, from the Redis cache when fresh."""
    key = cache_key(integration_id)
    cached = await redis.get(key)
    if cached:
        health = IntegrationHealth.model_validate_json(cached)
        health.cached = True
        return health
    health = await compute_health(redis, integration_id, dagster)
    await redis.set(key, health.model_dump_json(), ex=get_settings().health_cache_ttl_seconds)
    return health


async def forget(redis: aioredis.Redis, integration_id: str) -> None:
    """Drop the cached status (the integration changed or was deleted)."""
    await redis.delete(cache_key(integration_id))

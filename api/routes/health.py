"""``GET /api/v1/health``: the only route without a token (load balancers and probes)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.core.deps import RuntimeDep
from api.schemas.health import HealthPublic
from api.services.health_checks import check_dagster, check_database, check_redis

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic)
async def health(runtime: RuntimeDep) -> HealthPublic:
    """Whether PostgreSQL, Redis and the Dagster webserver answer."""
    database = await run_in_threadpool(check_database)
    checks = {
        "database": database,
        "redis": await check_redis(runtime.redis),
        "dagster": await check_dagster(runtime.http, runtime.settings.dagster_url),
    }
    status = "ok" if all(c["status"] == "ok" for c in checks.values()) else "degraded"
    return HealthPublic.model_validate({"status": status, "checks": checks})

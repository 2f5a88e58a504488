"""``/api/v1/stats`` and ``/api/v1/stats/series`` (shapes in docs/sidecar.md).

Answers are cached in Redis for a few seconds: dashboards poll these aggregates, and a
figure a few seconds old is as good as a fresh one while the database is spared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder

from api.core.deps import RuntimeDep
from api.core.runtime import Runtime
from api.schemas.stats import StatsPublic, StatsSeriesPublic
from api.services import stats as service
from tradeos_pipelines.core.vocabulary import LoggedEntity
from tradeos_pipelines.storage.database import session_scope

router = APIRouter(prefix="/stats", tags=["stats"])

CACHE_SECONDS = 5


async def _cached(runtime: Runtime, key: str, compute: Callable[[], dict[str, Any]]) -> Any:
    full_key = f"{runtime.settings.redis_namespace}:stats-cache:{key}"
    cached = await runtime.redis.get(full_key)
    if cached:
        return orjson.loads(cached)

    def run() -> Any:
        return jsonable_encoder(compute())

    answer = await run_in_threadpool(run)
    await runtime.redis.set(full_key, orjson.dumps(answer), ex=CACHE_SECONDS)
    return answer


@router.get("", response_model=StatsPublic)
async def read_stats(
    runtime: RuntimeDep,
    window: str = "24h",
    integration_id: str | None = None,
    entity: LoggedEntity | None = None,
) -> Any:
    """Per integration and entity: runs, success rate, mean and p95 duration, rows."""

    def compute() -> dict[str, Any]:
        with session_scope() as session:
            return service.stats(
                session, window=window, integration_id=integration_id, entity=entity
            )

    return await _cached(runtime, f"stats:{window}:{integration_id}:{entity}", compute)


@router.get("/series", response_model=StatsSeriesPublic)
async def read_stats_series(
    runtime: RuntimeDep,
    window: str = "24h",
    bucket: str = "1h",
    integration_id: str | None = None,
    entity: LoggedEntity | None = None,
) -> Any:
    """The same figures per time bucket, column-oriented for charts."""

    def compute() -> dict[str, Any]:
        with session_scope() as session:
            return service.series(
                session,
                window=window,
                bucket=bucket,
                integration_id=integration_id,
                entity=entity,
            )

    return await _cached(runtime, f"series:{window}:{bucket}:{integration_id}:{entity}", compute)

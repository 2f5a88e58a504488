"""``/api/v1/stats`` and ``/api/v1/stats/series`` (shapes in docs/sidecar.md).

Answers are cached in Redis for a few seconds: dashboards poll these aggregates, and a
figure a few seconds old is as good as a fresh one while the database is spared.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.core.deps import RuntimeDep
from api.schemas.stats import StatsPublic, StatsSeriesPublic
from api.services import stats as service
from tradeos_pipelines.core.vocabulary import LoggedEntity

router = APIRouter(prefix="/stats", tags=["stats"])


@router.get("", response_model=StatsPublic)
async def read_stats(
    runtime: RuntimeDep,
    window: str = "24h",
    integration_id: str | None = None,
    entity: LoggedEntity | None = None,
) -> Any:
    """Per integration and entity: runs, success rate, mean and p95 duration, rows."""

    return await service.cached(
        runtime,
        f"stats:{window}:{integration_id}:{entity}",
        lambda session: service.stats(
            session, window=window, integration_id=integration_id, entity=entity
        ),
    )


@router.get("/series", response_model=StatsSeriesPublic)
async def read_stats_series(
    runtime: RuntimeDep,
    window: str = "24h",
    bucket: str = "1h",
    integration_id: str | None = None,
    entity: LoggedEntity | None = None,
) -> Any:
    """The same figures per time bucket, column-oriented for charts."""

    return await service.cached(
        runtime,
        f"series:{window}:{bucket}:{integration_id}:{entity}",
        lambda session: service.series(
            session, window=window, bucket=bucket, integration_id=integration_id, entity=entity
        ),
    )

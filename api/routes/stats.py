"""``/api/v1/stats`` and ``/api/v1/stats/series`` (shapes in docs/sidecar.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import SessionDep
from api.schemas.stats import StatsPublic, StatsSeriesPublic
from api.schemas.sync import LoggedEntity
from api.services import stats as service

router = APIRouter(prefix="/stats", tags=["stats"])


@router.get("", response_model=StatsPublic)
def read_stats(
    session: SessionDep,
    window: str = "24h",
    integration_id: str | None = None,
    entity: LoggedEntity | None = None,
) -> Any:
    """Per integration and entity: runs, success rate, mean and p95 duration, rows."""
    return service.stats(session, window=window, integration_id=integration_id, entity=entity)


@router.get("/series", response_model=StatsSeriesPublic)
def read_stats_series(
    session: SessionDep,
    window: str = "24h",
    bucket: str = "1h",
    integration_id: str | None = None,
    entity: LoggedEntity | None = None,
) -> Any:
    """The same figures per time bucket, column-oriented for charts."""
    return service.series(
        session, window=window, bucket=bucket, integration_id=integration_id, entity=entity
    )

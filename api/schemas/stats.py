"""Statistics bodies (documented with examples in docs/sidecar.md)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, create_model

from tradeos_pipelines.core.vocabulary import ROW_COUNTERS

# The seven counters of the vocabulary, as a schema.
RowCounts = create_model(
    "RowCounts", __base__=BaseModel, **{counter: (int, ...) for counter in ROW_COUNTERS}
)


class EntityStats(BaseModel):
    integration_id: str
    entity: str
    runs: int
    running: int
    success: int
    partial: int
    failed: int
    success_rate: float | None
    mean_duration_ms: float | None
    p95_duration_ms: float | None
    rows: RowCounts
    last_started_at: datetime | None
    last_status: str | None


class StatsPublic(BaseModel):
    window: str
    since: datetime
    until: datetime
    count: int
    data: list[EntityStats]


class SeriesTotals(BaseModel):
    runs: list[int]
    success: list[int]
    partial: list[int]
    failed: list[int]


class EntitySeries(BaseModel):
    integration_id: str
    entity: str
    runs: list[int]
    success: list[int]
    partial: list[int]
    failed: list[int]
    mean_duration_ms: list[float | None]
    p95_duration_ms: list[float | None]
    fetched: list[int]
    created: list[int]
    updated: list[int]
    deleted: list[int]
    conflicts: list[int]
    rejected: list[int]


class StatsSeriesPublic(BaseModel):
    window: str
    bucket: str
    since: datetime
    until: datetime
    t: list[int]
    totals: SeriesTotals
    series: list[EntitySeries]

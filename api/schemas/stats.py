"""Statistics bodies (documented with examples in docs/sidecar.md)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class RowCounts(BaseModel):
    fetched: int
    created: int
    updated: int
    unchanged: int
    deleted: int
    conflicts: int
    rejected: int


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

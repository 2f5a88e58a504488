"""Sync requests, sync logs, the request-level log and integration health."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.json_types import JsonBool
from api.schemas.stats import RowCounts
from tradeos_pipelines.core.vocabulary import ENTITIES, Entity


class SyncNow(BaseModel):
    """What to sync now: ``entities`` (all three by default), ``full`` for a full pass."""

    model_config = ConfigDict(extra="forbid")

    entities: Annotated[list[Entity], Field(min_length=1, default_factory=lambda: list(ENTITIES))]
    full: JsonBool = False

    @field_validator("entities")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class SyncLaunched(BaseModel):
    """Dagster run ids started, or the id of the queued request when Dagster was down."""

    run_ids: list[str]
    request_id: int | None = None


class SyncLogPublic(RowCounts):  # type: ignore[valid-type, misc]
    model_config = ConfigDict(from_attributes=True)

    id: int
    integration_id: str
    entity: str
    run_id: str | None
    status: str
    full: bool
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    error: str | None
    sync_version: int | None


class SyncLogsPublic(BaseModel):
    data: list[SyncLogPublic]
    count: int
    next_cursor: str | None


class SyncRejectPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    onec_id: str | None
    reason: str
    payload: Any
    created_at: datetime


class SyncLogDetail(SyncLogPublic):
    """One sync with the rows 1C sent that could not be taken."""

    rejects: list[SyncRejectPublic]


class IntegrationLogPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    integration_id: str
    at: datetime
    method: str
    path: str
    status_code: int | None
    duration_ms: float
    attempt: int
    error: str | None
    run_id: str | None


class IntegrationLogsPublic(BaseModel):
    data: list[IntegrationLogPublic]
    count: int
    next_cursor: str | None


class EntityHealth(BaseModel):
    last_sync: SyncLogPublic | None
    last_success_at: datetime | None
    error_streak: int
    open_rejects: int = Field(
        default=0,
        description="Rows 1C sent that were not taken and not fixed since "
        "(GET /integrations/{id}/rejects lists them)",
    )
    waiting: bool = Field(
        default=False,
        description="A sync request (webhook, or 'sync now' while Dagster was unreachable) "
        "waits in sync_requests for the Dagster daemon",
    )
    waiting_since: datetime | None = Field(
        default=None, description="When the newest such request was made"
    )
    queued_runs: int = Field(
        default=0,
        description="Dagster runs of this entity queued (not started yet); known when the "
        "sidecar reads the Dagster instance (DAGSTER_HOME)",
    )
    running_runs: int = Field(
        default=0, description="Dagster runs of this entity started and not finished"
    )


class IntegrationHealth(BaseModel):
    """Cached operating status of one integration."""

    integration_id: str
    enabled: bool
    status: Literal["ok", "failing", "never_synced", "disabled", "circuit_open"]
    entities: dict[str, EntityHealth]
    circuit: dict[str, Any]
    error_streak: int = Field(description="Consecutive failed syncs, newest first, any entity")
    dagster_runs: bool = Field(
        default=False,
        description="True when queued_runs/running_runs were read from the Dagster instance",
    )
    checked_at: datetime
    cached: bool = False

"""Conflicts: a field changed both in TradeOS and in 1C."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class ConflictPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    integration_id: str
    entity: str
    onec_id: UUID
    field: str
    tradeos_value: Any
    onec_value: Any
    status: str
    resolution: str | None
    sync_log_id: int | None
    created_at: datetime
    resolved_at: datetime | None


class ConflictsPublic(BaseModel):
    data: list[ConflictPublic]
    count: int
    next_cursor: str | None


class ConflictResolve(BaseModel):
    """Which side wins: 1C's value or TradeOS's."""

    model_config = ConfigDict(extra="forbid")

    resolution: Literal["onec", "tradeos"]

"""Open rejects: rows 1C sent that could not be taken and were not fixed since."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class OpenReject(BaseModel):
    """The latest reject of one 1C row (by entity and 1C id) that no good version closed."""

    id: int = Field(description="Id of the latest reject of this row")
    entity: str
    onec_id: str | None = Field(description="1C id as sent (null when 1C sent none)")
    reason: str = Field(description="What is wrong, naming the field")
    payload: Any = Field(description="What 1C sent")
    sync_log_id: int = Field(description="The sync that last rejected the row")
    first_rejected_at: datetime
    last_rejected_at: datetime
    times_rejected: int = Field(description="How many syncs rejected this row while it was open")


class OpenRejects(BaseModel):
    data: list[OpenReject]
    count: int = Field(description="Rows in data")
    total: int = Field(description="Open rejected rows of the integration (data may be cut)")

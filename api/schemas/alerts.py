"""Alert channels as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class AlertChannelPublic(BaseModel):
    channel: Literal["webhook", "telegram", "email"]
    configured: bool
    last_status: Literal["ok", "retrying", "failed"] | None
    last_error: str | None
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_incident: str | None
    delivered_total: int
    failed_total: int
    dropped_total: int


class AlertChannelsPublic(BaseModel):
    data: list[AlertChannelPublic]
    count: int

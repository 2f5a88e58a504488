"""``GET /api/v1/health``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Check(BaseModel):
    status: Literal["ok", "error"]
    detail: str
    latency_ms: float


class HealthPublic(BaseModel):
    """``ok`` when every dependency answers, else ``degraded`` (never a 500)."""

    status: Literal["ok", "degraded"]
    checks: dict[str, Check]

"""What a 1C protocol needs from the outside, as interfaces the engine fills in.

The protocols never write the database: the engine (or the sidecar) hands a client a
:class:`RequestLog` (``storage.request_log.IntegrationLogWriter``). Breaker events go to a
:class:`StatusPublisher`, by default the event bus on the breaker's Redis. Tests pass
recorders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol


class RequestLog(Protocol):
    """Where every HTTP attempt to 1C is recorded (cheap, never blocking)."""

    def record(
        self,
        *,
        integration_id: str,
        method: str,
        path: str,
        status_code: int | None,
        duration_ms: float,
        attempt: int,
        error: str | None = None,
        run_id: str | None = None,
        at: datetime | None = None,
    ) -> None: ...


class StatusPublisher(Protocol):
    """Where the circuit breaker announces state changes and alerts."""

    async def publish(self, channel: str, event_type: str, data: dict[str, Any]) -> str | None: ...


class StoredCatalogue(Protocol):
    """What TradeOS holds of one integration's goods and folders, for a change probe that has
    no modification time to ask 1C about (OData): how many, and their versions."""

    def count(self) -> int:
        """Goods and folders TradeOS knows (stored, or rejected and still open)."""
        ...

    def versions(self, keys: Sequence[str]) -> Mapping[str, list[str]]:
        """Every version TradeOS knows of each of ``keys`` (stored and rejected ones)."""
        ...

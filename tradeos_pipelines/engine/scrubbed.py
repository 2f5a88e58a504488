"""The 1C client's outlets (request log, status events) with the integration's secrets scrubbed.

:func:`~tradeos_pipelines.engine.source.connect` wraps what it hands the client in these, so an
error text 1C echoed (``401 Wrong password for user:secret``) is stored in
``integration_logs`` and published in ``integration.status``/``alert`` events without them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tradeos_pipelines.core.scrub import Scrubber
from tradeos_pipelines.sources.common.ports import RequestLog, StatusPublisher


class ScrubbedRequestLog:
    """A :class:`RequestLog` that scrubs the path and error text of every attempt."""

    def __init__(self, inner: RequestLog, scrubber: Scrubber) -> None:
        self._inner = inner
        self._scrub = scrubber

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
    ) -> None:
        """Scrub, then record in the wrapped log."""
        self._inner.record(
            integration_id=integration_id,
            method=method,
            path=self._scrub(path),
            status_code=status_code,
            duration_ms=duration_ms,
            attempt=attempt,
            error=self._scrub(error) if error else error,
            run_id=run_id,
            at=at,
        )


class ScrubbedPublisher:
    """A :class:`StatusPublisher` that scrubs every string of the event data."""

    def __init__(self, inner: StatusPublisher, scrubber: Scrubber) -> None:
        self._inner = inner
        self._scrub = scrubber

    async def publish(self, channel: str, event_type: str, data: dict[str, Any]) -> str | None:
        """Scrub, then publish with the wrapped publisher."""
        return await self._inner.publish(channel, event_type, self._scrub.scrub_value(data))

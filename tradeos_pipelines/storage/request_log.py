"""Recording every HTTP attempt to 1C in ``integration_logs``, in batches.

``record()`` only appends to a buffer (no I/O), so logging never slows a sync; a background
thread writes the buffer every ``batch_size`` rows or ``flush_interval`` seconds, and
``close()`` writes what is left. Rows carry the method, the path (query without secrets),
status, duration, attempt number, error text and Dagster run id: never credentials or bodies.
If the database refuses a batch, the rows stay buffered (up to ``max_buffer``) and are tried
again on the next flush; ``close()`` waits up to ``close_wait_s`` for a PostgreSQL that is
restarting, so the attempts made during a restart are still written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine, insert

from tradeos_pipelines.storage.database import REACHABLE_WAIT_SECONDS, get_engine, when_reachable
from tradeos_pipelines.storage.tables import IntegrationLog

log = logging.getLogger(__name__)

PATH_LIMIT = 500
ERROR_LIMIT = 1000


class IntegrationLogWriter:
    """Buffered writer of ``integration_logs`` rows; usable from threads and event loops."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        engine: Engine | None = None,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        max_buffer: int = 100_000,
        close_wait_s: float = REACHABLE_WAIT_SECONDS,
    ) -> None:
        self._engine = engine or get_engine(database_url)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.close_wait_s = close_wait_s
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self.dropped = 0
        self._thread = threading.Thread(
            target=self._run, name="integration-log-writer", daemon=True
        )
        self._thread.start()

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
        """Buffer one attempt (cheap; safe from any thread)."""
        row = {
            "integration_id": integration_id,
            "at": at or datetime.now(UTC),
            "method": method,
            "path": path[:PATH_LIMIT],
            "status_code": status_code,
            "duration_ms": round(duration_ms, 2),
            "attempt": attempt,
            "error": error[:ERROR_LIMIT] if error else None,
            "run_id": run_id,
        }
        with self._lock:
            if self._closed:
                raise RuntimeError("IntegrationLogWriter is closed")
            self._rows.append(row)
            full = len(self._rows) >= self.batch_size
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Write every buffered row now (blocking; from async code use ``to_thread``)."""
        with self._write_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(IntegrationLog), rows)
            except Exception:
                log.warning("could not write %d integration_logs rows; will retry", len(rows))
                with self._lock:
                    self._rows[:0] = rows
                    overflow = len(self._rows) - self.max_buffer
                    if overflow > 0:
                        del self._rows[:overflow]
                        self.dropped += overflow
                raise

    def close(self) -> None:
        """Stop the background thread and write what is left (waiting ``close_wait_s`` for an
        unreachable PostgreSQL; after that the error is raised and the rows stay unwritten)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        self._thread.join()
        when_reachable(self.flush, wait_s=self.close_wait_s)

    async def aclose(self) -> None:
        """``close()`` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            with self._lock:
                closed = self._closed
            if closed:
                return
            # flush() logged the failure and kept the rows for the next try.
            with contextlib.suppress(Exception):
                self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""Run retries: a sync that failed on a transient error is tried again later, in the same run.

The engine marks a :class:`~tradeos_pipelines.engine.SyncFailed` ``transient`` when trying again
may succeed (1C unavailable through its whole retry budget, the circuit breaker open,
PostgreSQL gone). Such a step raises Dagster's :class:`~dagster.RetryRequested`: Dagster waits
and runs it again in the same run, which keeps the lane (``tradeos/lane``) so no second sync
of the same entity starts meanwhile. Every other failure (401/403, 404, a protocol error, too
many rejected rows) fails the run at once: repeating it would fail the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NoReturn

from dagster import AssetExecutionContext, Failure, RetryRequested

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.engine import SyncFailed

# However many retries, one wait never exceeds this.
MAX_RUN_RETRY_WAIT_S = 1800.0


def run_retry_wait(failed: SyncFailed, retry_number: int, base: float, now: datetime) -> float:
    """Seconds before retry ``retry_number + 1``: ``base · 2ⁿ``, and at least until an open
    circuit lets a probe through (earlier, the retry would be refused without asking 1C)."""
    wait = base * 2**retry_number
    if failed.retry_at is not None:
        wait = max(wait, (failed.retry_at - now).total_seconds() + 1.0)
    return min(wait, MAX_RUN_RETRY_WAIT_S)


def will_retry(context: AssetExecutionContext, failed: SyncFailed) -> bool:
    """Whether :func:`retry_or_fail` asks Dagster to run the step again."""
    return failed.transient and context.retry_number < get_settings().run_retries


def retry_or_fail(
    context: AssetExecutionContext,
    description: str,
    failed: SyncFailed,
    metadata: dict[str, Any] | None = None,
) -> NoReturn:
    """Raise :class:`RetryRequested` for a transient failure with retries left, else
    :class:`Failure` with ``description`` (what the UI shows) and ``metadata``."""
    settings = get_settings()
    retries = settings.run_retries
    if will_retry(context, failed):
        wait = run_retry_wait(
            failed, context.retry_number, settings.run_retry_delay_seconds, datetime.now(UTC)
        )
        context.log.warning(
            "%s; transient, retry %d of %d in %.0f s",
            description,
            context.retry_number + 1,
            retries,
            wait,
        )
        raise RetryRequested(max_retries=retries, seconds_to_wait=wait) from failed
    if failed.transient:
        description += f" (gave up after {retries} run retries)"
    raise Failure(description=description, metadata=metadata) from failed

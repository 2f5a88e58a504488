"""Live Dagster run status for WebSocket clients: ``run.*`` events on the ``runs`` channel.

Dagster's run status sensors fire only every ~30 s, so the sidecar reads the run storage of
the Dagster instance (``DAGSTER_HOME``, dagster-postgres) itself: every
``run_watcher_interval_seconds`` it asks for runs updated since its cursor and publishes each
new status. The query window overlaps the previous one (a run updated in the same instant, or
committed late, is not missed); ``(run_id, status)`` pairs already published are remembered
here and claimed in Redis, so several sidecar processes publish each change once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tradeos_pipelines.events import AsyncRedisEventBus

if TYPE_CHECKING:
    from dagster import DagsterInstance
    from dagster._core.storage.dagster_run import RunRecord

logger = logging.getLogger(__name__)

# Dagster status name → event type; transitional states (STARTING, CANCELING) are not events.
EVENT_FOR_STATUS = {
    "QUEUED": "run.queued",
    "STARTED": "run.started",
    "SUCCESS": "run.succeeded",
    "FAILURE": "run.failed",
    "CANCELED": "run.canceled",
}
# Tags set by tradeos_pipelines.onec_sync.runs.run_tags.
TAG_INTEGRATION = "tradeos/integration"
TAG_ENTITY = "tradeos/entity"
TAG_PARTITION = "dagster/partition"

OVERLAP = timedelta(seconds=2)
BATCH = 500
SEEN_LIMIT = 20_000
CLAIM_TTL_SECONDS = 24 * 3600


def run_event(record: RunRecord) -> tuple[str, dict[str, Any]] | None:
    """(event type, data) announcing a run record's current status, or None if not an event."""
    run = record.dagster_run
    event_type = EVENT_FOR_STATUS.get(run.status.value)
    if event_type is None:
        return None
    tags = run.tags or {}
    data = {
        "run_id": run.run_id,
        "job_name": run.job_name,
        "status": run.status.value,
        "partition": tags.get(TAG_PARTITION),
        "integration_id": tags.get(TAG_INTEGRATION),
        "entity": tags.get(TAG_ENTITY),
        "tags": {"integration": tags.get(TAG_INTEGRATION), "entity": tags.get(TAG_ENTITY)},
        "updated_at": record.update_timestamp.isoformat(),
    }
    return event_type, data


class RunWatcher:
    """Polls a Dagster instance and publishes run status changes on the ``runs`` channel."""

    def __init__(
        self,
        instance: DagsterInstance,
        redis: aioredis.Redis,
        namespace: str,
        *,
        interval_seconds: float = 0.5,
    ) -> None:
        self._instance = instance
        self._redis = redis
        self._namespace = namespace
        self._bus = AsyncRedisEventBus(redis, namespace=namespace)
        self._interval = interval_seconds
        self._cursor: datetime | None = None
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    @classmethod
    def from_environment(
        cls, redis: aioredis.Redis, namespace: str, *, interval_seconds: float
    ) -> RunWatcher:
        """The watcher of the instance in ``DAGSTER_HOME``."""
        from dagster import DagsterInstance

        return cls(DagsterInstance.get(), redis, namespace, interval_seconds=interval_seconds)

    async def start(self) -> None:
        """Position the cursor at the newest update (history is not re-announced), then poll."""
        latest = await asyncio.to_thread(self._fetch, None, 1, False)
        self._cursor = latest[0].update_timestamp if latest else datetime.now(UTC)
        for record in latest:
            self._remember(record)
        self._task = asyncio.create_task(self._run(), name="dagster-run-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _fetch(
        self, updated_after: datetime | None, limit: int, ascending: bool
    ) -> list[RunRecord]:
        from dagster import RunsFilter

        filters = RunsFilter(updated_after=updated_after) if updated_after else None
        return list(
            self._instance.get_run_records(
                filters=filters, limit=limit, order_by="update_timestamp", ascending=ascending
            )
        )

    def _remember(self, record: RunRecord) -> None:
        """Mark (run, status) as announced."""
        self._seen[(record.dagster_run.run_id, record.dagster_run.status.value)] = None
        if len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)

    async def poll_once(self) -> int:
        """Publish what changed since the cursor; returns the number of events published."""
        assert self._cursor is not None, "start() positions the cursor"
        records = await asyncio.to_thread(self._fetch, self._cursor - OVERLAP, BATCH, True)
        published = 0
        for record in records:
            key = (record.dagster_run.run_id, record.dagster_run.status.value)
            event = None if key in self._seen else run_event(record)
            if event is not None:
                event_type, data = event
                claim = f"{self._namespace}:run-status:{data['run_id']}:{data['status']}"
                # Claimed in Redis so that several sidecar processes announce a change once.
                if await self._redis.set(claim, 1, nx=True, ex=CLAIM_TTL_SECONDS):
                    await self._bus.publish("runs", event_type, data)
                    published += 1
            # Only after publishing: a Redis error retries this record on the next poll.
            self._remember(record)
            self._cursor = max(self._cursor, record.update_timestamp)
        self.published += published
        return published

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                logger.warning("run watcher: Redis unavailable (%s); retrying", type(exc).__name__)
            except Exception as exc:  # Dagster storage down: keep the cursor, try again
                logger.warning("run watcher: cannot read Dagster runs (%s)", type(exc).__name__)
            await asyncio.sleep(self._interval)

"""Live Dagster run status for WebSocket clients: ``run.*`` events on the ``runs`` channel.

Dagster's run status sensors fire only every ~30 s, so the sidecar reads the Dagster
instance's event log (``DAGSTER_HOME``, dagster-postgres) itself: every
``run_watcher_interval_seconds`` it fetches the run status change events (enqueued, started,
succeeded, failed, canceled) newer than its cursor. Reading events rather than the runs
table means a run that starts and finishes between two polls still announces both.

The query window overlaps the previous one by a few seconds (an event committed late is not
missed); ``(run_id, status)`` pairs already published are remembered here and claimed in
Redis, so several sidecar processes publish each change once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tradeos_pipelines.core.vocabulary import PARTITION_TAG as TAG_PARTITION
from tradeos_pipelines.core.vocabulary import TAG_ENTITY, TAG_INTEGRATION
from tradeos_pipelines.event_bus import AsyncRedisEventBus

if TYPE_CHECKING:
    from dagster import DagsterInstance

logger = logging.getLogger(__name__)

# Dagster event type → (run status, event type published).
STATUS_EVENTS = {
    "RUN_ENQUEUED": ("QUEUED", "run.queued"),
    "RUN_START": ("STARTED", "run.started"),
    "RUN_SUCCESS": ("SUCCESS", "run.succeeded"),
    "RUN_FAILURE": ("FAILURE", "run.failed"),
    "RUN_CANCELED": ("CANCELED", "run.canceled"),
}

OVERLAP_SECONDS = 3.0
BATCH = 500
SEEN_LIMIT = 20_000
CLAIM_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class StatusChange:
    """One run status change read from the event log."""

    run_id: str
    status: str
    event_type: str
    job_name: str
    timestamp: float


def run_event_data(change: StatusChange, tags: dict[str, str]) -> dict[str, Any]:
    """The ``data`` of a ``run.*`` event."""
    return {
        "run_id": change.run_id,
        "job_name": change.job_name,
        "status": change.status,
        "partition": tags.get(TAG_PARTITION),
        "integration_id": tags.get(TAG_INTEGRATION),
        "entity": tags.get(TAG_ENTITY),
        "tags": {"integration": tags.get(TAG_INTEGRATION), "entity": tags.get(TAG_ENTITY)},
        "at": change.timestamp,
    }


class RunWatcher:
    """Polls a Dagster instance's event log and publishes run status changes on ``runs``."""

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
        self._cursor: float | None = None
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._tags: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    @property
    def instance(self) -> DagsterInstance:
        """The Dagster instance watched (the metrics read its run queue too)."""
        return self._instance

    @classmethod
    def from_environment(
        cls, redis: aioredis.Redis, namespace: str, *, interval_seconds: float
    ) -> RunWatcher:
        """The watcher of the instance in ``DAGSTER_HOME``."""
        from dagster import DagsterInstance

        return cls(DagsterInstance.get(), redis, namespace, interval_seconds=interval_seconds)

    async def start(self) -> None:
        """Start from now (history is not re-announced), then poll in the background."""
        import time

        self._cursor = time.time()
        self._task = asyncio.create_task(self._run(), name="dagster-run-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _fetch(self, after: float) -> list[StatusChange]:
        # Both public in Dagster 1.13 (``DagsterInstance.fetch_run_status_changes`` is @public).
        from dagster import DagsterEventType, RunStatusChangeRecordsFilter

        changes = []
        for name, (status, _) in STATUS_EVENTS.items():
            result = self._instance.fetch_run_status_changes(
                RunStatusChangeRecordsFilter(
                    event_type=DagsterEventType[name], after_timestamp=after
                ),
                limit=BATCH,
                ascending=True,
            )
            for record in result.records:
                entry = record.event_log_entry
                changes.append(
                    StatusChange(entry.run_id, status, name, entry.job_name or "", entry.timestamp)
                )
        changes.sort(key=lambda c: c.timestamp)
        return changes

    def _run_tags(self, run_id: str) -> dict[str, str]:
        tags = self._tags.get(run_id)
        if tags is None:
            run = self._instance.get_run_by_id(run_id)
            tags = dict(run.tags) if run is not None else {}
            self._tags[run_id] = tags
            if len(self._tags) > SEEN_LIMIT:
                self._tags.popitem(last=False)
        return tags

    async def poll_once(self) -> int:
        """Publish what changed since the cursor; returns the number of events published."""
        assert self._cursor is not None, "start() sets the cursor"
        changes = await asyncio.to_thread(self._fetch, self._cursor - OVERLAP_SECONDS)
        published = 0
        for change in changes:
            key = (change.run_id, change.status)
            if key not in self._seen:
                claim = f"{self._namespace}:run-status:{change.run_id}:{change.status}"
                # Claimed in Redis so that several sidecar processes announce a change once.
                if await self._redis.set(claim, 1, nx=True, ex=CLAIM_TTL_SECONDS):
                    tags = await asyncio.to_thread(self._run_tags, change.run_id)
                    await self._bus.publish(
                        "runs", STATUS_EVENTS[change.event_type][1], run_event_data(change, tags)
                    )
                    published += 1
                # Only after publishing: a Redis error retries this change on the next poll.
                self._seen[key] = None
                if len(self._seen) > SEEN_LIMIT:
                    self._seen.popitem(last=False)
            self._cursor = max(self._cursor, change.timestamp)
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

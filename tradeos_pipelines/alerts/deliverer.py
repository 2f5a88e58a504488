"""Deliver alerts to the deployment's channels: one message per incident, one on recovery.

The deliverer runs in the sidecar, far from any sync: the engine, the breaker and the sensors
only append events to Redis Streams, so a slow or failing channel can never hold a sync up.

- It reads ``alerts``, ``integration_status`` and ``sync_updates`` through a Redis consumer
  group, so with several sidecar processes each event is handled once, and alerts raised
  while no sidecar ran are delivered when one starts.
- :func:`~tradeos_pipelines.alerts.incidents.interpret` maps an event to an incident key.
  The set of open incidents is a Redis hash: an ``alert`` for an incident already open is
  dropped (the failure-streak sensor repeats itself, the breaker re-opens after a failed
  probe); a recovery is sent only for an incident that was open.
- Each channel has its own bounded queue and worker: at most ``TRADEOS_ALERT_RATE_PER_MINUTE``
  messages a minute, each retried ``TRADEOS_ALERT_RETRY_ATTEMPTS`` times with exponential
  backoff and jitter (Telegram's ``retry_after`` is honoured). A failed channel never delays
  another. The last delivery of each channel is kept in Redis (:func:`channel_statuses`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import socket
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from tradeos_pipelines.alerts.channels import (
    Channel,
    DeliveryFailed,
    Notice,
    configured_channel_names,
    configured_channels,
)
from tradeos_pipelines.alerts.incidents import ONE_OFF, Signal, interpret
from tradeos_pipelines.core.settings import Settings
from tradeos_pipelines.event_bus import decode_event, stream_key

logger = logging.getLogger(__name__)

GROUP = "alert-deliverer"
WATCHED = ("alerts", "integration_status", "sync_updates")
QUEUE_LIMIT = 100
MAX_BACKOFF_S = 300.0
CHANNEL_NAMES = ("webhook", "telegram", "email")


def incidents_key(namespace: str) -> str:
    return f"{namespace}:alerts:incidents"


def status_key(namespace: str, channel: str) -> str:
    return f"{namespace}:alerts:channel:{channel}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ChannelWorker:
    """One channel's queue, pace and retries; records each outcome in Redis."""

    def __init__(
        self, channel: Channel, redis: aioredis.Redis, namespace: str, settings: Settings
    ) -> None:
        self.channel = channel
        self._redis = redis
        self._key = status_key(namespace, channel.name)
        self._queue: collections.deque[Notice] = collections.deque()
        self._ready = asyncio.Event()
        self._interval = 60.0 / settings.alert_rate_per_minute
        self._attempts = settings.alert_retry_attempts
        self._base = settings.alert_retry_base_seconds
        self._last_sent = 0.0
        self._task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"alerts-{self.channel.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def offer(self, notice: Notice) -> None:
        """Queue a notice; beyond :data:`QUEUE_LIMIT` the oldest waiting one is dropped."""
        if len(self._queue) >= QUEUE_LIMIT:
            dropped = self._queue.popleft()
            logger.warning(
                "alert channel %s: queue full, dropped %s", self.channel.name, dropped.incident
            )
            self._record({"last_dropped_at": _now()}, dropped=1)
        self._queue.append(notice)
        self._ready.set()

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            while self._queue:
                notice = self._queue.popleft()
                wait = self._last_sent + self._interval - time.monotonic()
                if wait > 0:  # the rate limit: messages are delayed, not lost
                    await asyncio.sleep(wait)
                await self._deliver(notice)
                self._last_sent = time.monotonic()
            self._ready.clear()

    async def _deliver(self, notice: Notice) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                await self.channel.send(notice)
            except DeliveryFailed as exc:
                final = not exc.retry or attempt == self._attempts
                logger.warning(
                    "alert channel %s: attempt %d of %d failed: %s",
                    self.channel.name,
                    attempt,
                    self._attempts,
                    exc,
                )
                await self._write(
                    {
                        "last_status": "failed" if final else "retrying",
                        "last_error": str(exc),
                        "last_attempt_at": _now(),
                        "last_incident": notice.incident,
                        "attempts": attempt,
                    },
                    failed=1 if final else 0,
                )
                if final:
                    return
                backoff = min(MAX_BACKOFF_S, self._base * 2 ** (attempt - 1))
                await asyncio.sleep(exc.retry_after or random.uniform(backoff / 2, backoff))
            except Exception as exc:  # a bug in a channel must not stop the worker
                logger.exception("alert channel %s crashed", self.channel.name)
                await self._write(
                    {
                        "last_status": "failed",
                        "last_error": f"{type(exc).__name__}: {exc}",
                        "last_attempt_at": _now(),
                        "last_incident": notice.incident,
                    },
                    failed=1,
                )
                return
            else:
                now = _now()
                await self._write(
                    {
                        "last_status": "ok",
                        "last_error": "",
                        "last_attempt_at": now,
                        "last_success_at": now,
                        "last_incident": notice.incident,
                        "attempts": attempt,
                    },
                    delivered=1,
                )
                return

    async def _write(self, fields: dict[str, Any], **counters: int) -> None:
        try:
            pipe = self._redis.pipeline()
            pipe.hset(self._key, mapping={k: str(v) for k, v in fields.items()})
            for name, value in counters.items():
                if value:
                    pipe.hincrby(self._key, f"{name}_total", value)
            await pipe.execute()
        except RedisError as exc:
            logger.warning("alert channel %s: status not saved (%s)", self.channel.name, exc)

    def _record(self, fields: dict[str, Any], **counters: int) -> None:
        # Kept referenced until done, so the write is not garbage-collected half-way.
        task = asyncio.create_task(self._write(fields, **counters))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)


class AlertDeliverer:
    """Reads the event streams and hands each incident's notices to every configured channel."""

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        *,
        channels: list[Channel] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._namespace = settings.redis_namespace
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self._own_http = http is None
        chosen = channels if channels is not None else configured_channels(settings, self._http)
        self.workers = [ChannelWorker(c, redis, self._namespace, settings) for c in chosen]
        self._consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._streams = {stream_key(c, self._namespace): c for c in WATCHED}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        """Start the channel workers and the stream reader (no channel: nothing runs)."""
        if not self.workers:
            return
        for worker in self.workers:
            worker.start()
        self._task = asyncio.create_task(self._run(), name="alert-deliverer")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), timeout=5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for worker in self.workers:
            await worker.stop()
        if self._own_http:
            await self._http.aclose()

    async def _create_groups(self) -> None:
        for key in self._streams:
            try:
                # "$": a new deployment starts from now; afterwards the group remembers.
                await self._redis.xgroup_create(key, GROUP, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _run(self) -> None:
        grouped = False
        while True:
            try:
                if not grouped:
                    await self._create_groups()
                    grouped = True
                    self.ready.set()
                answer = await self._redis.xreadgroup(
                    GROUP,
                    self._consumer,
                    streams={key: ">" for key in self._streams},
                    count=100,
                    block=1000,
                )
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                if "NOGROUP" in str(exc):  # a stream was deleted: make the group again
                    grouped = False
                    continue
                logger.warning(
                    "alert deliverer cannot read Redis (%s); retrying", type(exc).__name__
                )
                await asyncio.sleep(1)
                continue
            for raw_key, entries in answer or []:
                key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
                channel = self._streams[key]
                for entry_id, fields in entries:
                    try:
                        await self.handle(channel, entry_id, fields)
                    except RedisError as exc:  # the entry stays pending; logged, not retried
                        logger.warning("alert event %s not handled (%s)", entry_id, exc)
                        continue
                    await self._redis.xack(key, GROUP, entry_id)

    async def handle(self, channel: str, entry_id: Any, fields: dict[Any, Any]) -> Notice | None:
        """Turn one stream entry into a notice for every channel, if it opens or closes one."""
        try:
            event = decode_event(channel, entry_id, fields)
        except Exception:
            logger.warning("skipping malformed event %s on %s", entry_id, channel)
            return None
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        signal = interpret(channel, str(event.get("type")), data)
        if signal is None:
            return None
        opened = await self._transition(signal, event["ts"])
        if opened is None:
            return None
        opened_at, message = opened
        notice = Notice(
            incident=signal.key,
            state=signal.state,
            integration_id=signal.integration_id,
            entity=signal.entity,
            severity=signal.severity,
            message=message,
            error=signal.error,
            opened_at=opened_at,
            at=event["ts"],
            event_id=event["id"],
        )
        for worker in self.workers:
            worker.offer(notice)
        return notice

    async def _transition(self, signal: Signal, ts: str) -> tuple[str, str] | None:
        """Open or close the incident: (when it opened, its message), or None when it was
        already open (a repeat) or not open (nothing to recover from)."""
        key = incidents_key(self._namespace)
        if signal.key.startswith(ONE_OFF):  # nothing would ever close it: not kept open
            return ts, signal.message
        if signal.state == "open":
            record = orjson.dumps({"opened_at": ts, "message": signal.message})
            if await self._redis.hsetnx(key, signal.key, record):
                return ts, signal.message
            return None
        raw = await self._redis.hget(key, signal.key)
        if raw is None or not await self._redis.hdel(key, signal.key):
            return None
        opened = orjson.loads(raw)
        return str(opened.get("opened_at")), str(opened.get("message") or signal.message)


async def channel_statuses(redis: aioredis.Redis, settings: Settings) -> list[dict[str, Any]]:
    """Each channel: configured or not, and its last delivery (status, error, times, totals)."""
    configured = configured_channel_names(settings)
    statuses = []
    for name in CHANNEL_NAMES:
        raw = await redis.hgetall(status_key(settings.redis_namespace, name))
        fields = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        statuses.append(
            {
                "channel": name,
                "configured": name in configured,
                "last_status": fields.get("last_status"),
                "last_error": fields.get("last_error") or None,
                "last_attempt_at": fields.get("last_attempt_at"),
                "last_success_at": fields.get("last_success_at"),
                "last_incident": fields.get("last_incident"),
                "delivered_total": int(fields.get("delivered_total", 0)),
                "failed_total": int(fields.get("failed_total", 0)),
                "dropped_total": int(fields.get("dropped_total", 0)),
            }
        )
    return statuses

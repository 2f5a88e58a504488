"""The Redis Streams reader: one task per process relays every channel to local clients.

It starts at each stream's current end (``$`` semantics, but with concrete ids so no event
is missed between two XREAD calls) and blocks on all channel streams at once. Replay for a
reconnecting client reads the same streams with XRANGE from just after ``last_event_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from api.live.manager import ConnectionManager, Frame, stream_id_key
from tradeos_pipelines.event_bus import CHANNELS, decode_event, stream_key

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 1000
READ_COUNT = 1000
# At most this many events are replayed per channel; older ones are beyond retention anyway.
REPLAY_LIMIT = 10_000


class InvalidEventId(ValueError):
    """``last_event_id`` is not a Redis Streams id (``<ms>-<seq>``)."""


_EVENT_ID = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?", re.ASCII)


def parse_event_id(value: str) -> str:
    """Validate a client-supplied event id; returns it normalised."""
    # Redis ids are two unsigned 64-bit numbers (at most 20 ASCII digits each); the pattern
    # also keeps int() away from its 4,300-digit limit and from digits like "²".
    match = _EVENT_ID.fullmatch(value)
    if match is None or max(int(match[1]), int(match[2] or 0)) >= 1 << 64:
        raise InvalidEventId(
            f"last_event_id {value[:60]!r} is not an event id like 1732700000000-0"
        )
    ms, seq = match[1], match[2]
    return f"{int(ms)}-{int(seq or 0)}"


# Events after which the cached integration health and statistics are out of date.
# A run's start or end changes the queued/running counts of the health snapshot too.
INVALIDATING_TYPES = frozenset(
    {
        "sync.finished",
        "sync.failed",
        "integration.status",
        "integration.changed",
        "run.started",
        "run.succeeded",
        "run.failed",
        "run.canceled",
    }
)


def event_frame(channel: str, event_id: str, fields: dict[Any, Any]) -> Frame:
    """The frame of one stream entry (contract format), encoded once for all its clients."""
    return _frame(channel, event_id, decode_event(channel, event_id, fields))


def _frame(channel: str, event_id: str, event: dict[str, Any]) -> Frame:
    return Frame(orjson.dumps(event, default=str), channel, event_id)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class StreamRelay:
    """Reads all channel streams and fans events out through a :class:`ConnectionManager`."""

    def __init__(self, redis: aioredis.Redis, namespace: str, manager: ConnectionManager) -> None:
        self._redis = redis
        self._manager = manager
        self._namespace = namespace
        self._keys = {stream_key(c, namespace): c for c in CHANNELS}
        self._task: asyncio.Task[None] | None = None
        self._invalidations: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()
        # Stream key -> id of the last entry read (the metrics' event-stream lag); None
        # until the reader has positioned itself.
        self.positions: dict[str, str] | None = None

    async def start(self) -> None:
        """Start the reader task; returns once it is positioned at the streams' ends.

        With Redis down it returns after a few seconds anyway (the sidecar must still answer
        ``/health``); the reader keeps retrying and positions itself when Redis is back.
        """
        self._task = asyncio.create_task(self._run(), name="ws-stream-relay")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), timeout=5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _stream_ends(self) -> dict[str, str]:
        ends = {}
        for key in self._keys:
            last = await self._redis.xrevrange(key, count=1)
            ends[key] = _text(last[0][0]) if last else "0-0"
        return ends

    async def _run(self) -> None:
        positions: dict[str, str] | None = None
        while True:
            try:
                if positions is None:
                    positions = await self._stream_ends()
                    self.positions = positions
                    self.ready.set()
                answer = await self._redis.xread(
                    streams=positions,  # type: ignore[arg-type]
                    count=READ_COUNT,
                    block=READ_BLOCK_MS,
                )
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                # Keep the positions: after Redis comes back nothing retained is lost.
                logger.warning("event relay cannot read Redis (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1)
                continue
            for key, entries in answer or []:
                key = _text(key)
                channel = self._keys[key]
                for entry_id, fields in entries:
                    event_id = _text(entry_id)
                    positions[key] = event_id
                    self._deliver(channel, event_id, fields)

    def _deliver(self, channel: str, event_id: str, fields: dict[Any, Any]) -> None:
        try:
            event = decode_event(channel, event_id, fields)
            frame = _frame(channel, event_id, event)
        except Exception:  # a malformed entry must not stop the relay for everyone
            logger.warning("skipping malformed event %s on %s", event_id, channel)
            return
        self._manager.fan_out(frame)
        if event.get("type") in INVALIDATING_TYPES:
            data = event.get("data")
            integration_id = data.get("integration_id") if isinstance(data, dict) else None
            # Off the fan-out path; kept referenced so the task is not garbage-collected.
            task = asyncio.create_task(self._forget_cached(integration_id))
            self._invalidations.add(task)
            task.add_done_callback(self._invalidations.discard)

    async def _forget_cached(self, integration_id: str | None) -> None:
        """Drop cached health and statistics, so a reloaded dashboard shows the new state."""
        try:
            keys = [
                key
                async for key in self._redis.scan_iter(
                    match=f"{self._namespace}:stats-cache:*", count=1000
                )
            ]
            if isinstance(integration_id, str):
                keys.append(f"{self._namespace}:integration-health:{integration_id}")
            if keys:
                await self._redis.delete(*keys)
        except RedisError as exc:  # the caches expire by themselves within seconds
            logger.warning("could not clear cached health/stats (%s)", type(exc).__name__)

    async def replay(self, channels: set[str], after_id: str) -> list[Frame]:
        """Event frames after ``after_id`` on ``channels``, oldest first."""
        events: list[Frame] = []
        for channel in channels:
            entries = await self._redis.xrange(
                stream_key(channel, self._namespace),
                min=f"({after_id}",
                max="+",
                count=REPLAY_LIMIT,
            )
            for entry_id, fields in entries:
                event_id = _text(entry_id)
                events.append(event_frame(channel, event_id, fields))
        events.sort(key=lambda frame: stream_id_key(frame.event_id or "0"))
        return events

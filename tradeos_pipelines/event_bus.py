"""The event bus: Redis Streams, one stream per channel, trimmed to a bounded length.

Publishers (the sync engine, the 1C client's circuit breaker, the sidecar's Dagster run
watcher) append here; the sidecar's WebSocket relay reads the streams and fans events out to
subscribers. A stream entry's id is the event id, so a reconnecting client resumes with
``last_event_id`` and misses nothing still retained.

Entry layout: one field ``e`` holding the JSON of ``{"type", "ts", "data"}``; the channel is
the stream and the id is the entry id, so neither is stored twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import redis
import redis.asyncio as aioredis

from tradeos_pipelines.core.settings import get_settings

CHANNELS = (
    "sync_updates",
    "product_updates",
    "stock_updates",
    "order_updates",
    "integration_status",
    "alerts",
    "runs",
)


class UnknownChannel(ValueError):
    """An event names a channel outside :data:`CHANNELS`."""


def stream_key(channel: str, namespace: str | None = None) -> str:
    """Redis key of a channel's stream."""
    if channel not in CHANNELS:
        raise UnknownChannel(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
    return f"{namespace or get_settings().redis_namespace}:events:{channel}"


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_event(event_type: str, data: dict[str, Any]) -> bytes:
    """The stored form of an event (JSON, Cyrillic kept as UTF-8)."""
    return orjson.dumps({"type": event_type, "ts": _timestamp(), "data": data}, default=str)


def decode_event(channel: str, entry_id: str | bytes, fields: dict[Any, Any]) -> dict[str, Any]:
    """The wire form the WebSocket sends: ``{"id", "channel", "type", "ts", "data"}``."""
    raw = fields.get(b"e", fields.get("e"))
    body = orjson.loads(raw)
    event_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return {"id": event_id, "channel": channel, **body}


class EventPublisher(Protocol):
    """What the sync engine needs to announce progress (tests may record instead)."""

    def publish(self, channel: str, event_type: str, data: dict[str, Any]) -> str | None: ...


class _StreamWriter:
    """What both publishers share: the namespace, the trim length and the XADD arguments."""

    def __init__(self, *, namespace: str | None = None, maxlen: int | None = None) -> None:
        settings = get_settings()
        self._namespace = namespace or settings.redis_namespace
        self._maxlen = maxlen or settings.event_stream_maxlen

    def _xadd_args(self, channel: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        # Approximate trimming keeps XADD O(1) while bounding each stream.
        return {
            "name": stream_key(channel, self._namespace),
            "fields": {"e": encode_event(event_type, data)},
            "maxlen": self._maxlen,
            "approximate": True,
        }


def _entry_id(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class RedisEventBus(_StreamWriter):
    """Synchronous publisher for the sync engine and Dagster code."""

    def __init__(
        self, client: redis.Redis, *, namespace: str | None = None, maxlen: int | None = None
    ) -> None:
        super().__init__(namespace=namespace, maxlen=maxlen)
        self._client = client

    @classmethod
    def from_settings(cls) -> RedisEventBus:
        return cls(redis.Redis.from_url(get_settings().require_redis_url()))

    def publish(self, channel: str, event_type: str, data: dict[str, Any]) -> str | None:
        """Append an event; returns its id."""
        return _entry_id(self._client.xadd(**self._xadd_args(channel, event_type, data)))


class AsyncRedisEventBus(_StreamWriter):
    """Asynchronous publisher for the 1C client and the sidecar."""

    def __init__(
        self, client: aioredis.Redis, *, namespace: str | None = None, maxlen: int | None = None
    ) -> None:
        super().__init__(namespace=namespace, maxlen=maxlen)
        self._client = client

    async def publish(self, channel: str, event_type: str, data: dict[str, Any]) -> str | None:
        """Append an event; returns its id."""
        return _entry_id(await self._client.xadd(**self._xadd_args(channel, event_type, data)))

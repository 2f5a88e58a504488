"""Local WebSocket connections, their subscriptions and bounded send buffers.

An event becomes one :class:`Frame`, encoded once however many clients receive it. Two kinds
of connection take frames without awaiting anything, so fan-out is a plain loop:

- :class:`Connection` (``/ws`` on the REST port, served through Starlette) owns a queue of at
  most ``queue_size`` frames and one sender task;
- ``DirectConnection`` (:mod:`api.live.ws_server`, the WebSocket port) writes the ready
  WebSocket frame straight to its socket's buffer.

A client that cannot keep up fills its own queue or buffer, is closed with 1013 and never
slows the others or grows the process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import cached_property
from typing import Any, Protocol

import orjson
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode

from tradeos_pipelines.event_bus import CHANNELS

logger = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
# A close frame waits until the client reads what is already buffered; uvicorn's keepalive
# ping times out a client that never reads, so this only bounds the wait.
CLOSE_TIMEOUT_SECONDS = 60.0


def dumps(message: dict[str, Any]) -> str:
    """One text frame (UTF-8 JSON, Cyrillic as is)."""
    return orjson.dumps(message, default=str).decode()


class Frame:
    """One outgoing message: its UTF-8 JSON, and the text and wire forms made on first use.

    Fan-out hands the same object to every subscriber, so each form is encoded once per event.
    ``channel`` and ``event_id`` are set for events (to skip live copies of replayed ones).
    """

    def __init__(
        self, payload: bytes, channel: str | None = None, event_id: str | None = None
    ) -> None:
        self.payload = payload
        self.channel = channel
        self.event_id = event_id

    @classmethod
    def of(cls, message: dict[str, Any]) -> Frame:
        """A control message (welcome, pong, error, heartbeat…)."""
        return cls(orjson.dumps(message, default=str))

    @cached_property
    def text(self) -> str:
        """For Starlette's ``send_text``."""
        return self.payload.decode()

    @cached_property
    def wire(self) -> bytes:
        """The complete unmasked, uncompressed server text frame (RFC 6455 section 5.2)."""
        return WireFrame(Opcode.TEXT, self.payload).serialize(mask=False, extensions=[])


class Subscriber(Protocol):
    """What the manager needs of a connection, whichever server carries it."""

    channels: set[str]
    peer: str
    closed: bool
    on_drop: Callable[[Any], None] | None

    def offer(self, frame: Frame) -> bool: ...


def stream_id_key(event_id: str) -> tuple[int, int]:
    """Sortable form of a Redis Streams id ``<ms>-<seq>``."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def is_replayed(frame: Frame, replayed_up_to: dict[str, tuple[int, int]]) -> bool:
    """Whether ``frame`` is a live copy of an event already sent by replay.

    Live events of a channel arrive in id order, so once one is past the replayed id that
    channel is forgotten (``replayed_up_to`` is updated in place).
    """
    if frame.channel is None or frame.event_id is None:
        return False
    replayed = replayed_up_to.get(frame.channel)
    if replayed is None:
        return False
    if stream_id_key(frame.event_id) <= replayed:
        return True
    del replayed_up_to[frame.channel]
    return False


class Connection:
    """One client: its channels, its bounded queue and the sender that drains it."""

    def __init__(
        self,
        send_text: Callable[[str], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        *,
        queue_size: int,
        peer: str = "",
    ) -> None:
        self._send_text = send_text
        self._close = close
        self.queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize=queue_size)
        self.channels: set[str] = set()
        self.peer = peer
        self.closed = False
        # Per channel: the last id already sent by replay; live copies up to it are skipped.
        self.replayed_up_to: dict[str, tuple[int, int]] = {}
        self._sender: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.on_drop: Callable[[Connection], None] | None = None

    def start(self) -> None:
        """Start draining the queue to the socket."""
        self._sender = asyncio.create_task(self._drain(), name=f"ws-sender-{self.peer}")

    async def _drain(self) -> None:
        try:
            while True:
                frame = await self.queue.get()
                if self.replayed_up_to and is_replayed(frame, self.replayed_up_to):
                    continue
                await self._send_text(frame.text)
        except asyncio.CancelledError:
            raise
        except Exception:  # the socket went away; the receive loop notices and cleans up
            self.closed = True

    def offer(self, frame: Frame) -> bool:
        """Queue a frame without waiting; a full queue drops the client (close 1013)."""
        if self.closed:
            return False
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.drop(CLOSE_TRY_AGAIN_LATER, "client too slow: send queue full")
            return False
        return True

    def drop(self, code: int, reason: str) -> None:
        """Stop sending and close the socket with ``code`` (in the background)."""
        if self.closed:
            return
        self.closed = True
        if self._sender is not None:
            self._sender.cancel()
        if self.on_drop is not None:
            self.on_drop(self)
        # Kept on the connection: a task without a reference may be garbage-collected.
        self._closer = asyncio.create_task(self._close_quietly(code, reason))

    async def _close_quietly(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._close(code, reason), CLOSE_TIMEOUT_SECONDS)

    async def stop(self) -> None:
        """Stop the sender (the socket is closing)."""
        self.closed = True
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender


class ConnectionManager:
    """Every connection of this process, indexed by channel, with relay statistics."""

    def __init__(self, *, queue_size: int = 1000, heartbeat_seconds: float = 20.0) -> None:
        self.queue_size = queue_size
        self.heartbeat_seconds = heartbeat_seconds
        self._by_channel: dict[str, set[Subscriber]] = {c: set() for c in CHANNELS}
        self._connections: set[Subscriber] = set()
        self.events_relayed = 0
        self.messages_sent = 0
        self.dropped_clients = 0
        self.connections_total = 0
        self._started = time.monotonic()
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def connections(self) -> int:
        return len(self._connections)

    def register(self, connection: Subscriber, channels: Iterable[str]) -> None:
        """Add a connection subscribed to ``channels`` (already validated)."""
        connection.on_drop = self._dropped
        self._connections.add(connection)
        self.connections_total += 1
        self.subscribe(connection, channels)

    def unregister(self, connection: Subscriber) -> None:
        """Forget a connection (it closed)."""
        self._connections.discard(connection)
        for channel in connection.channels:
            self._by_channel[channel].discard(connection)
        connection.channels = set()

    def _dropped(self, connection: Subscriber) -> None:
        self.dropped_clients += 1
        logger.warning("dropped slow WebSocket client %s", connection.peer)
        self.unregister(connection)

    def subscribe(self, connection: Subscriber, channels: Iterable[str]) -> None:
        for channel in channels:
            connection.channels.add(channel)
            self._by_channel[channel].add(connection)

    def unsubscribe(self, connection: Subscriber, channels: Iterable[str]) -> None:
        for channel in channels:
            connection.channels.discard(channel)
            self._by_channel[channel].discard(connection)

    def fan_out(self, frame: Frame) -> None:
        """Hand one event frame to every subscriber of its channel (nothing awaited)."""
        assert frame.channel is not None
        self.events_relayed += 1
        sent = 0
        # Copy: a dropped client unregisters itself while we iterate.
        for connection in list(self._by_channel[frame.channel]):
            if connection.offer(frame):
                sent += 1
        self.messages_sent += sent

    def stats(self) -> dict[str, Any]:
        """What ``get_stats`` answers."""
        return {
            "connections": len(self._connections),
            "channels": {c: len(subs) for c, subs in self._by_channel.items()},
            "events_relayed": self.events_relayed,
            "messages_sent": self.messages_sent,
            "dropped_clients": self.dropped_clients,
            "connections_total": self.connections_total,
            "send_queue_size": self.queue_size,
            "uptime_seconds": round(time.monotonic() - self._started, 1),
            "pid": os.getpid(),
        }

    def start_heartbeat(self) -> None:
        """Send ``{"type": "heartbeat"}`` to every client periodically (keeps proxies open)."""
        self._heartbeat = asyncio.create_task(self._beat(), name="ws-heartbeat")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            frame = Frame.of({"type": "heartbeat", "ts": time.time()})
            for connection in list(self._connections):
                connection.offer(frame)

    async def close_all(self) -> None:
        """Stop the heartbeat and every sender (shutdown)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        for connection in list(self._connections):
            if isinstance(connection, Connection):
                await connection.stop()

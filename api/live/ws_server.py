"""``/ws`` on the WebSocket port, served by the ``websockets`` library's asyncio server.

Fan-out is the hot path of the sidecar (every event goes to every subscriber of its channel),
so this port skips the ASGI layers: each event's WebSocket frame is built once
(:attr:`api.live.manager.Frame.wire`) and written straight into each subscriber's socket
buffer, with no coroutine or await per client per event, and permessage-deflate is off
(compressing every frame once per client is what makes fan-out expensive). A client whose
unsent bytes pass ``TRADEOS_WS_SEND_QUEUE_SIZE`` KiB is closed with 1013 and never slows the
others. The protocol (welcome, subscribe, get_stats, ping, replay, 1008) is the one of
:mod:`api.live.websocket`, shared with ``/ws`` on the REST port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from api.core.auth import authenticate_cached
from api.live.manager import (
    CLOSE_POLICY_VIOLATION,
    CLOSE_TIMEOUT_SECONDS,
    CLOSE_TRY_AGAIN_LATER,
    Frame,
    is_replayed,
    stream_id_key,
)
from api.live.websocket import error_frame, handle_message, parse_query, welcome_frame

if TYPE_CHECKING:
    from api.core.runtime import Runtime

logger = logging.getLogger(__name__)

# Unsent bytes allowed per client: TRADEOS_WS_SEND_QUEUE_SIZE frames of about this size.
BYTES_PER_QUEUED_FRAME = 1024
MAX_MESSAGE_BYTES = 1 << 20
PING_INTERVAL_SECONDS = 20.0


class DirectConnection:
    """A client of the WebSocket port: frames go straight into its socket buffer."""

    def __init__(self, ws: ServerConnection, *, queue_size: int, peer: str = "") -> None:
        self.ws = ws
        self.channels: set[str] = set()
        self.peer = peer
        self.closed = False
        self.on_drop: Callable[[Any], None] | None = None
        self.buffer_limit = queue_size * BYTES_PER_QUEUED_FRAME
        self._queue_size = queue_size
        # Until the welcome and any replay are sent, live frames wait here (bounded).
        self._held: list[Frame] | None = []
        # Per channel: the last id sent by replay. The relay may fan out an event the replay
        # already read from Redis after the replay ended (it reads the stream on its own
        # schedule), so live copies up to it are skipped until one is past it.
        self._replayed_up_to: dict[str, tuple[int, int]] = {}
        self._closer: asyncio.Task[None] | None = None

    def offer(self, frame: Frame) -> bool:
        """Write ``frame`` without waiting; a client too far behind is dropped (close 1013)."""
        if self.closed:
            return False
        if self._held is not None:
            if len(self._held) >= self._queue_size:
                self.drop(CLOSE_TRY_AGAIN_LATER, "client too slow: send queue full")
                return False
            self._held.append(frame)
            return True
        if self._replayed_up_to and is_replayed(frame, self._replayed_up_to):
            return True  # sent already, by the replay
        ws = self.ws
        if ws.protocol.state is not State.OPEN:
            return False
        transport = ws.transport
        if transport.get_write_buffer_size() > self.buffer_limit:
            self.drop(CLOSE_TRY_AGAIN_LATER, "client too slow: send buffer full")
            return False
        # The connection never sends fragmented messages, so a whole frame can go in between
        # whatever the protocol object writes (pongs, the close frame).
        transport.write(frame.wire)
        return True

    def release(self, replayed_up_to: dict[str, tuple[int, int]]) -> None:
        """Start writing live frames, first those held meanwhile; replayed events are skipped,
        held or fanned out later."""
        held, self._held = self._held or [], None
        self._replayed_up_to = replayed_up_to
        for frame in held:
            self.offer(frame)

    def drop(self, code: int, reason: str) -> None:
        """Stop writing and close the socket with ``code`` (in the background)."""
        if self.closed:
            return
        self.closed = True
        if self.on_drop is not None:
            self.on_drop(self)
        # Kept on the connection: a task without a reference may be garbage-collected.
        self._closer = asyncio.create_task(self.ws.close(code, reason))


def _only_ws_path(connection: ServerConnection, request: Request) -> Response | None:
    if urlsplit(request.path).path != "/ws":
        return connection.respond(404, "Not Found: the WebSocket endpoint is /ws\n")
    return None


class WebSocketServer:
    """The WebSocket port; ``serve``/``started``/``should_exit`` mirror ``uvicorn.Server``."""

    def __init__(self, host: str, port: int, runtime: Runtime) -> None:
        self.host = host
        self.port = port
        self.runtime = runtime
        self.started = False
        self.should_exit = False
        self.force_exit = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Accept clients until :attr:`should_exit` is set, then close them (1001)."""
        where: dict[str, Any] = (
            {"sock": sockets[0]} if sockets else {"host": self.host, "port": self.port}
        )
        server = await serve(
            self._handle,
            compression=None,
            process_request=_only_ws_path,
            max_size=MAX_MESSAGE_BYTES,
            ping_interval=PING_INTERVAL_SECONDS,
            ping_timeout=PING_INTERVAL_SECONDS,
            # A dropped client gets time to read what is buffered before the close frame.
            close_timeout=CLOSE_TIMEOUT_SECONDS,
            **where,
        )
        self.started = True
        try:
            while not self.should_exit:  # noqa: ASYNC110 - the uvicorn-style stop flag
                await asyncio.sleep(0.1)
        finally:
            server.close()
            while not self.force_exit:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(server.wait_closed()), 0.1)
                    break
            if self.force_exit:
                for connection in list(server.connections):
                    connection.transport.abort()

    async def _handle(self, ws: ServerConnection) -> None:
        manager = self.runtime.manager
        assert ws.request is not None
        params = dict(parse_qsl(urlsplit(ws.request.path).query))
        identity = await authenticate_cached(params.get("token"), self.runtime.redis)
        if identity is None:
            await ws.close(CLOSE_POLICY_VIOLATION, "invalid or missing token")
            return
        opening = parse_query(params)
        host, port, *_ = ws.remote_address or ("", "")
        connection = DirectConnection(ws, queue_size=manager.queue_size, peer=f"{host}:{port}")
        # Registered before the replay, so nothing published meanwhile is missed; frames
        # held meanwhile skip the replayed events.
        manager.register(connection, opening.channels)
        self.runtime.revocations.track(connection, identity)
        try:
            await ws.send(welcome_frame(opening.channels).payload, text=True)
            for notice in opening.notices:
                await ws.send(notice.payload, text=True)
            replayed: dict[str, tuple[int, int]] = {}
            if opening.last_event_id is not None:
                frames = await self.runtime.relay.replay(
                    set(opening.channels), opening.last_event_id
                )
                for frame in frames:
                    await ws.send(frame.payload, text=True)
                    assert frame.channel is not None and frame.event_id is not None
                    replayed[frame.channel] = stream_id_key(frame.event_id)
            connection.release(replayed)
            async for message in ws:
                if isinstance(message, bytes):
                    connection.offer(error_frame("send JSON text frames, not binary"))
                else:
                    connection.offer(handle_message(message, connection, manager))
        except ConnectionClosed:
            pass
        finally:
            connection.closed = True
            manager.unregister(connection)

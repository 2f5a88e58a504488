"""The ``/ws`` protocol of the sidecar (see docs/sidecar.md) and its Starlette endpoint.

The message handling here is shared by both servers: :func:`websocket_endpoint` (``/ws`` on
the REST port) and :mod:`api.live.ws_server` (the WebSocket port).

Query: ``token`` (required), ``channels`` (comma separated; all channels when absent),
``last_event_id`` (replay what was missed before live events). Client messages: subscribe,
unsubscribe, get_stats, ping; anything else gets ``{"type": "error"}`` and the socket stays
open. A bad or missing token closes with 1008 right after the handshake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import WebSocket

from api.core.auth import authenticate_cached
from api.live.manager import (
    CLOSE_POLICY_VIOLATION,
    Connection,
    ConnectionManager,
    Frame,
    Subscriber,
    stream_id_key,
)
from api.live.relay import InvalidEventId, StreamRelay, parse_event_id
from tradeos_pipelines.event_bus import CHANNELS


def split_channels(values: Any) -> tuple[list[str], list[str]]:
    """(known channels, unknown names) of a comma string or a JSON list."""
    if isinstance(values, str):
        names = [v.strip() for v in values.split(",") if v.strip()]
    elif isinstance(values, list) and all(isinstance(v, str) for v in values):
        names = values
    else:
        return [], ["channels must be a list of channel names"]
    known = [n for n in dict.fromkeys(names) if n in CHANNELS]
    unknown = [n for n in names if n not in CHANNELS]
    return known, unknown


def error_frame(message: str) -> Frame:
    """``{"type": "error", "error": message}``; the connection stays open."""
    return Frame.of({"type": "error", "error": message})


def _unknown_channels(unknown: list[str]) -> Frame:
    return error_frame(
        f"unknown channel(s) {', '.join(unknown)}; expected one of {', '.join(CHANNELS)}"
    )


@dataclass
class Opening:
    """What a client asked for in the query string, and notices about what was wrong."""

    channels: list[str]
    last_event_id: str | None = None
    notices: list[Frame] = field(default_factory=list)


def parse_query(params: Mapping[str, str]) -> Opening:
    """Channels (all when absent) and ``last_event_id`` of the connection URL."""
    raw_channels = params.get("channels")
    if raw_channels is None:
        opening = Opening(list(CHANNELS))
    else:
        channels, unknown = split_channels(raw_channels)
        opening = Opening(channels)
        if unknown:
            opening.notices.append(_unknown_channels(unknown))
    if params.get("last_event_id"):
        try:
            opening.last_event_id = parse_event_id(params["last_event_id"])
        except InvalidEventId as exc:
            opening.notices.append(error_frame(str(exc)))
    return opening


def welcome_frame(channels: list[str]) -> Frame:
    return Frame.of({"type": "welcome", "channels": sorted(channels)})


def handle_message(text: str, connection: Subscriber, manager: ConnectionManager) -> Frame:
    """The answer frame to one client message."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return error_frame("message is not valid JSON")
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return error_frame('message must be a JSON object with a "type"')
    kind = message["type"]
    if kind == "ping":
        return Frame.of({"type": "pong"})
    if kind == "get_stats":
        return Frame.of({"type": "stats", "data": manager.stats()})
    if kind in ("subscribe", "unsubscribe"):
        if "channels" not in message:
            return error_frame(f'{kind} needs "channels": a list of channel names')
        channels, unknown = split_channels(message["channels"])
        if unknown:
            return _unknown_channels(unknown)
        if kind == "subscribe":
            manager.subscribe(connection, channels)
        else:
            manager.unsubscribe(connection, channels)
        return Frame.of({"type": "subscribed", "channels": sorted(connection.channels)})
    return error_frame(
        f"unknown message type {kind!r}; expected subscribe, unsubscribe, get_stats or ping"
    )


async def websocket_endpoint(websocket: WebSocket) -> None:
    """Serve one WebSocket client until it disconnects or is dropped."""
    runtime = websocket.app.state.runtime
    manager: ConnectionManager = runtime.manager
    relay: StreamRelay = runtime.relay
    # Accept first: closing during the handshake would be an HTTP 403, not the 1008 clients expect.
    await websocket.accept()
    identity = await authenticate_cached(websocket.query_params.get("token"), runtime.redis)
    if identity is None:
        await websocket.close(code=CLOSE_POLICY_VIOLATION, reason="invalid or missing token")
        return

    opening = parse_query(websocket.query_params)
    channels = opening.channels

    async def close(code: int, reason: str) -> None:
        await websocket.close(code=code, reason=reason)

    client = websocket.client
    connection = Connection(
        websocket.send_text,
        close,
        queue_size=manager.queue_size,
        peer=f"{client.host}:{client.port}" if client else "",
    )
    # Registered before the replay, so nothing published meanwhile is missed; the sender
    # skips live copies of replayed events.
    manager.register(connection, channels)
    runtime.revocations.track(connection, identity)
    try:
        await websocket.send_text(welcome_frame(channels).text)
        for notice in opening.notices:
            await websocket.send_text(notice.text)
        if opening.last_event_id is not None:
            for frame in await relay.replay(set(channels), opening.last_event_id):
                await websocket.send_text(frame.text)
                assert frame.channel is not None and frame.event_id is not None
                connection.replayed_up_to[frame.channel] = stream_id_key(frame.event_id)
        connection.start()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                connection.offer(error_frame("send JSON text frames, not binary"))
                continue
            connection.offer(handle_message(text, connection, manager))
    except Exception:  # the client vanished mid-send; nothing to tell it
        pass
    finally:
        manager.unregister(connection)
        await connection.stop()

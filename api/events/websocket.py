"""The ``/ws`` endpoint: the sidecar's WebSocket protocol (see docs/sidecar.md).

Query: ``token`` (required), ``channels`` (comma separated; all channels when absent),
``last_event_id`` (replay what was missed before live events). Client messages: subscribe,
unsubscribe, get_stats, ping; anything else gets ``{"type": "error"}`` and the socket stays
open. A bad or missing token closes with 1008 right after the handshake.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import WebSocket
from fastapi.concurrency import run_in_threadpool

from api.auth import authenticate
from api.events.manager import (
    CLOSE_POLICY_VIOLATION,
    Connection,
    ConnectionManager,
    dumps,
    stream_id_key,
)
from api.events.relay import InvalidEventId, StreamRelay, parse_event_id
from tradeos_pipelines.events import CHANNELS


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


def _error(message: str) -> str:
    return dumps({"type": "error", "error": message})


def _unknown_channels(unknown: list[str]) -> str:
    return _error(f"unknown channel(s) {', '.join(unknown)}; expected one of {', '.join(CHANNELS)}")


def handle_message(text: str, connection: Connection, manager: ConnectionManager) -> str:
    """The answer frame to one client message."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _error("message is not valid JSON")
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return _error('message must be a JSON object with a "type"')
    kind = message["type"]
    if kind == "ping":
        return dumps({"type": "pong"})
    if kind == "get_stats":
        return dumps({"type": "stats", "data": manager.stats()})
    if kind in ("subscribe", "unsubscribe"):
        if "channels" not in message:
            return _error(f'{kind} needs "channels": a list of channel names')
        channels, unknown = split_channels(message["channels"])
        if unknown:
            return _unknown_channels(unknown)
        if kind == "subscribe":
            manager.subscribe(connection, channels)
        else:
            manager.unsubscribe(connection, channels)
        return dumps({"type": "subscribed", "channels": sorted(connection.channels)})
    return _error(
        f"unknown message type {kind!r}; expected subscribe, unsubscribe, get_stats or ping"
    )


async def websocket_endpoint(websocket: WebSocket) -> None:
    """Serve one WebSocket client until it disconnects or is dropped."""
    runtime = websocket.app.state.runtime
    manager: ConnectionManager = runtime.manager
    relay: StreamRelay = runtime.relay
    # Accept first: closing during the handshake would be an HTTP 403, not the 1008 clients expect.
    await websocket.accept()
    identity = await run_in_threadpool(authenticate, websocket.query_params.get("token"))
    if identity is None:
        await websocket.close(code=CLOSE_POLICY_VIOLATION, reason="invalid or missing token")
        return

    notices: list[str] = []
    raw_channels = websocket.query_params.get("channels")
    if raw_channels is None:
        channels = list(CHANNELS)
    else:
        channels, unknown = split_channels(raw_channels)
        if unknown:
            notices.append(_unknown_channels(unknown))
    last_event_id = None
    if websocket.query_params.get("last_event_id"):
        try:
            last_event_id = parse_event_id(websocket.query_params["last_event_id"])
        except InvalidEventId as exc:
            notices.append(_error(str(exc)))

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
    try:
        await websocket.send_text(dumps({"type": "welcome", "channels": sorted(channels)}))
        for notice in notices:
            await websocket.send_text(notice)
        if last_event_id is not None:
            for channel, event_id, frame in await relay.replay(set(channels), last_event_id):
                await websocket.send_text(frame)
                connection.replayed_up_to[channel] = stream_id_key(event_id)
        connection.start()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                connection.offer(_error("send JSON text frames, not binary"))
                continue
            connection.offer(handle_message(text, connection, manager))
    except Exception:  # the client vanished mid-send; nothing to tell it
        pass
    finally:
        manager.unregister(connection)
        await connection.stop()

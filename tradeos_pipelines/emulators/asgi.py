"""The bare ASGI plumbing both emulators share: read a body, send an answer, drop a connection.

The emulators are plain ASGI apps (no framework) so that what they send is exactly what the
1C they play would send; this module is the part of that which does not depend on which 1C.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Answer(Protocol):
    """What an emulator answers: status, body bytes, content type, extra headers."""

    status: int
    body: bytes
    content_type: bytes
    headers: tuple[tuple[bytes, bytes], ...]


async def read_body(receive: Receive) -> bytes:
    """The whole request body (empty when the client went away)."""
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def respond(send: Send, answer: Answer) -> None:
    """Send ``answer`` with its length."""
    headers = [
        (b"content-type", answer.content_type),
        (b"content-length", str(len(answer.body)).encode()),
        *answer.headers,
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def drop(send: Send) -> None:
    """Close the connection without a byte of answer, like a crashed 1C worker process.

    uvicorn's ``send`` is a method of the connection's request cycle, which holds the transport;
    aborting it resets the TCP connection. A server without that attribute gets the next best
    thing: a status line and a body cut short.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        # Let the loop deliver connection_lost, so uvicorn knows nobody awaits an answer.
        await asyncio.sleep(0)
        return
    headers = [(b"content-length", b"1000")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise ConnectionAbortedError("connection dropped on purpose (emulated fault)")


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the server's start-up and shut-down (the emulators hold nothing to open)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# The most rows one control call may touch: a larger ``count`` would stall the emulator's loop.
MAX_CONTROL_COUNT = 100_000


def control_refusal(
    key: str | None, headers: dict[bytes, bytes], body: bytes
) -> tuple[int, str] | None:
    """Why a ``/_control/`` call is refused (status, message), or None to serve it.

    The controls change the emulated 1C (its data, its faults), so they are a tester's tool,
    not part of the 1C it plays: off unless the emulator was started with a control key, then
    only with that key in ``X-Control-Key`` — a custom header, which a browser cannot send
    cross-site without a CORS preflight the emulator never grants — and with JSON bodies only
    (``text/plain`` and form posts are what a cross-site page can send without one).
    """
    if key is None:
        return 403, "controls are off: start the emulator with --control-key KEY to use them"
    if not hmac.compare_digest(headers.get(b"x-control-key", b""), key.encode()):
        return 403, "X-Control-Key is missing or wrong"
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if body and content_type != b"application/json":
        return 415, "control bodies must be application/json"
    return None


def control_count(data: dict[str, Any]) -> int:
    """The ``count`` of a control call, checked (``ValueError`` names the field)."""
    count = data.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"count must be an integer, got {count!r}")
    if not 0 <= count <= MAX_CONTROL_COUNT:
        raise ValueError(f"count must be between 0 and {MAX_CONTROL_COUNT}, got {count}")
    return count

"""The sidecar's front door: a pure ASGI middleware that runs before any route reads a body.

For every HTTP request under ``/api/v1`` (except ``GET /api/v1/health``) it

1. answers 401 when the bearer token is missing, unknown or revoked — from the headers alone,
   so an anonymous client cannot make the process read, buffer or parse a body;
2. answers 403 when the token's scopes do not cover the route (:mod:`api.core.scopes`);
3. answers 413 when ``Content-Length`` exceeds the route's cap, and stops a body that grows
   past the cap while it streams (chunked uploads carry no length);
4. answers 422 naming the parameter when a path or query value holds a NUL byte (PostgreSQL
   text cannot store one, so it would otherwise surface as a 500 deep in a query).

The identity found is left in ``scope["state"]["identity"]`` so the route dependency
(:func:`api.core.deps.require_token`) does not check the token a second time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import HTTPException

from api.core.auth import TokenIdentity, authenticate_cached
from api.core.scopes import required_scope, scope_allows

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/api/v1"
PUBLIC_ROUTES = frozenset({("GET", f"{API_PREFIX}/health"), ("HEAD", f"{API_PREFIX}/health")})
WEBHOOK_PREFIX = f"{API_PREFIX}/webhooks/"

# Integration bodies are a few hundred bytes; 1 MiB leaves room without letting one request
# hold much memory. The webhook's ``ids`` list (up to 10,000 1C GUIDs, ~40 bytes each) is the
# largest legitimate body.
DEFAULT_BODY_LIMIT = 1 << 20
WEBHOOK_BODY_LIMIT = 512 << 10


def body_limit(path: str) -> int:
    """The largest body accepted on ``path``, in bytes."""
    return WEBHOOK_BODY_LIMIT if path.startswith(WEBHOOK_PREFIX) else DEFAULT_BODY_LIMIT


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the cap (FastAPI re-raises it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"request body is larger than {limit} bytes")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def bearer_from_scope(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    raw = _header(scope, b"authorization")
    if raw is None:
        return None
    header = raw.decode("latin-1")
    auth_scheme, _, value = header.partition(" ")
    if auth_scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def _send_json(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] = ()
) -> None:
    payload = orjson.dumps({"detail": body})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                # The body was not read: the connection cannot be reused for another request.
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _path_templates(app: Any) -> list[tuple[re.Pattern[str], list[str]]]:
    """The documented path templates as regexes with their parameter names (cached)."""
    cached = getattr(app.state, "guard_path_templates", None)
    if cached is None:
        cached = []
        for template in app.openapi().get("paths", {}):
            names = re.findall(r"\{([^}/]+)\}", template)
            regex = re.sub(r"\\\{[^}/]+\\\}", "([^/]*)", re.escape(template))
            cached.append((re.compile(regex), names))
        app.state.guard_path_templates = cached
    return cached


def _nul_problem(scope: Scope, app: Any) -> tuple[str, str] | None:
    """(location, field) of the first path or query value holding a NUL byte."""
    path: str = scope.get("path", "")
    if "\x00" in path:
        if app is not None and hasattr(app, "openapi"):
            for pattern, names in _path_templates(app):
                match = pattern.fullmatch(path)
                if match is None:
                    continue
                for name, value in zip(names, match.groups(), strict=True):
                    if "\x00" in value:
                        return "path", name
        return "path", "path"
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in value or "\x00" in name:
                return "query", name.replace("\x00", "\\0")
    return None


class GuardMiddleware:
    """Authentication, scopes, body caps and NUL checks before the application runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        if path.startswith(API_PREFIX + "/") and (method, path) not in PUBLIC_ROUTES:
            identity = await self._authenticate(scope)
            if identity is None:
                message = (
                    "invalid or revoked token"
                    if bearer_from_scope(scope)
                    else "missing bearer token: send 'Authorization: Bearer <token>'"
                )
                await _send_json(send, 401, message, [(b"www-authenticate", b"Bearer")])
                return
            needed = required_scope(method, path)
            if not scope_allows(identity.scopes, needed):
                await _send_json(
                    send,
                    403,
                    f"this token's scopes ({', '.join(identity.scopes) or 'none'}) "
                    f"do not include {needed!r}",
                )
                return
            scope.setdefault("state", {})["identity"] = identity
        problem = _nul_problem(scope, scope.get("app"))
        if problem is not None:
            location, field = problem
            await _send_json(
                send,
                422,
                [
                    {
                        "field": field,
                        "loc": [location, field],
                        "msg": "must not contain NUL (\\u0000) characters",
                        "type": "value_error",
                    }
                ],
            )
            return
        limit = body_limit(path)
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _send_json(send, 400, "Content-Length is not a number")
                return
            if declared > limit:
                await _send_json(send, 413, f"request body is larger than {limit} bytes")
                return
        await self._call_capped(scope, receive, send, limit)

    async def _authenticate(self, scope: Scope) -> TokenIdentity | None:
        token = bearer_from_scope(scope)
        if token is None:
            return None
        runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
        return await authenticate_cached(token, getattr(runtime, "redis", None))

    async def _call_capped(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge as exc:
            # Raised where no handler turned it into a response (a route reading the stream
            # itself); FastAPI's body parsing re-raises it as the 413 it is.
            if started:
                raise
            await _send_json(send, 413, exc.detail)

"""The guard in front of the Dagster UI and its GraphQL API (an ASGI middleware).

dagster-webserver has no authentication and answers any ``Host`` and ``Origin``. Its GraphQL
endpoint runs a mutation sent as ``GET /graphql?query=mutation{…}`` (and as a ``text/plain``
POST with the query in the URL), so any web page the operator opens could stop a sensor or
launch runs through the operator's browser, and a DNS-rebinding page could read the UI. The
guard refuses, before Dagster sees the request:

- a ``Host`` that is not a loopback name or one of ``TRADEOS_DAGSTER_ALLOWED_HOSTS``
  (DNS rebinding: the attacker's name resolving to 127.0.0.1 arrives with the attacker's
  ``Host``) — 421;
- a request whose ``Origin`` is not the UI's own origin (cross-site fetches, form posts and
  WebSockets all carry one) — 403;
- a GraphQL document holding a mutation or subscription sent with ``GET`` — 405;
- a ``POST /graphql`` whose body is not ``application/json`` or ``application/graphql`` (the
  only kinds a cross-site page cannot send without a CORS preflight, which Dagster never
  grants) — 415;
- with ``TRADEOS_DAGSTER_REQUIRE_TOKEN`` (for a UI published beyond loopback): a request
  without an admin API token, as ``Authorization: Bearer`` (the sidecar, scripts) or as the
  cookie a browser gets from ``/tradeos/login`` — 401, or a redirect to that page.

``/server_info`` stays open: container health checks read it, and it holds only versions.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import anyio
import orjson
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# token -> True when it is a live admin token (storage checks it; tests pass their own).
TokenCheck = Callable[[str], bool]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
LOGIN_PATH = "/tradeos/login"
COOKIE = "tradeos_dagster_token"
OPEN_PATHS = frozenset({"/server_info"})
# A login form is a few hundred bytes; anything larger is not one.
LOGIN_BODY_LIMIT = 4096
# A checked token is trusted this long (the UI sends dozens of requests a second while a
# run is shown); a revoked one is refused after at most this many seconds.
TOKEN_CACHE_SECONDS = 5.0


@dataclass
class GuardPolicy:
    """What the guard lets through: extra host names, and whether a token is required."""

    allowed_hosts: frozenset[str] = LOOPBACK_NAMES
    require_token: bool = False
    check_token: TokenCheck | None = None
    secure_cookie: bool = False
    _checked: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        extra_hosts: Iterable[str] = (),
        *,
        require_token: bool = False,
        check_token: TokenCheck | None = None,
        secure_cookie: bool = False,
    ) -> GuardPolicy:
        if require_token and check_token is None:
            raise ValueError("require_token needs a check_token")
        hosts = LOOPBACK_NAMES | {h.strip().lower().strip("[]") for h in extra_hosts if h.strip()}
        return cls(frozenset(hosts), require_token, check_token, secure_cookie)

    async def token_is_valid(self, token: str) -> bool:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        if self._checked.get(key, 0.0) > now:
            return True
        assert self.check_token is not None
        valid = await anyio.to_thread.run_sync(self.check_token, token)
        if valid:
            if len(self._checked) > 10_000:  # only a handful of tokens exist; bound a flood
                self._checked.clear()
            self._checked[key] = now + TOKEN_CACHE_SECONDS
        else:
            self._checked.pop(key, None)
        return valid


class DagsterGuard:
    """Wraps the dagster-webserver ASGI app with the checks of the module docstring."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = await self._refusal(scope, headers, receive, send)
        if refusal is None:
            await self.app(scope, receive, send)
        elif refusal != "answered":
            if scope["type"] == "websocket":
                # Closing before accepting makes the server answer the handshake with 403.
                await send({"type": "websocket.close", "code": 1008, "reason": refusal[1]})
            else:
                await _send_text(send, refusal[0], refusal[1])

    async def _refusal(
        self, scope: Scope, headers: dict[str, str], receive: Receive, send: Send
    ) -> tuple[int, str] | str | None:
        host = headers.get("host", "")
        hostname = _hostname(host)
        if hostname not in self.policy.allowed_hosts:
            return 421, (
                f"Host {host!r} is not served here: the Dagster UI answers to "
                f"{', '.join(sorted(self.policy.allowed_hosts))} (TRADEOS_DAGSTER_ALLOWED_HOSTS)"
            )
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return 403, f"cross-origin request from {origin!r} refused"
        path: str = scope["path"]
        method: str = scope.get("method", "GET")
        if path == LOGIN_PATH and scope["type"] == "http":
            await self._login(scope, method, receive, send)
            return "answered"
        if self.policy.require_token and path not in OPEN_PATHS:
            token = _bearer(headers) or _cookie(headers, COOKIE)
            if token is None or not await self.policy.token_is_valid(token):
                if scope["type"] == "http" and method == "GET" and _wants_html(headers):
                    target = path + (
                        "?" + scope["query_string"].decode() if scope["query_string"] else ""
                    )
                    await _redirect(send, f"{LOGIN_PATH}?next={quote(target, safe='')}")
                    return "answered"
                return 401, "an admin API token is required: Authorization: Bearer <token>"
        if path.endswith("/graphql") and scope["type"] == "http":
            if method == "GET" and _mutates(scope["query_string"]):
                return 405, "GraphQL mutations and subscriptions must be sent with POST"
            if method == "POST":
                kind = headers.get("content-type", "").split(";")[0].strip().lower()
                if kind not in ("application/json", "application/graphql"):
                    return 415, "GraphQL POST bodies must be application/json"
        return None

    async def _login(self, scope: Scope, method: str, receive: Receive, send: Send) -> None:
        query = parse_qs(scope["query_string"].decode("latin-1"))
        if method == "GET":
            await _send_html(send, 200, _login_page(_safe_next(query.get("next", ["/"])[0]), None))
            return
        if method != "POST":
            await _send_text(send, 405, "use GET or POST")
            return
        body = await _read_body(receive, LOGIN_BODY_LIMIT)
        if body is None:
            await _send_text(send, 413, f"a login form is under {LOGIN_BODY_LIMIT} bytes")
            return
        form = parse_qs(body.decode("utf-8", "replace"))
        token = form.get("token", [""])[0].strip()
        target = _safe_next(form.get("next", ["/"])[0])
        if not self.policy.require_token:
            await _redirect(send, target)
            return
        if not token or not await self.policy.token_is_valid(token):
            page = _login_page(target, "Токен не подошёл: нужен действующий токен с правом admin.")
            await _send_html(send, 401, page)
            return
        cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
        if self.policy.secure_cookie:
            cookie += "; Secure"
        await _redirect(send, target, extra=[(b"set-cookie", cookie.encode("latin-1"))])


def _hostname(host: str) -> str:
    """The name part of a ``Host`` header (``[::1]:3000`` → ``::1``), lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _cookie(headers: dict[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _wants_html(headers: dict[str, str]) -> bool:
    return "text/html" in headers.get("accept", "")


def _mutates(query_string: bytes) -> bool:
    """True when a GET's GraphQL document holds anything but queries."""
    documents = parse_qs(query_string.decode("utf-8", "replace")).get("query", [])
    for document in documents:
        try:
            parsed = parse(document)
        except GraphQLError:
            continue  # Dagster answers a syntax error; an unparsable document runs nothing
        for definition in parsed.definitions:
            if (
                isinstance(definition, OperationDefinitionNode)
                and definition.operation is not OperationType.QUERY
            ):
                return True
    return False


def _safe_next(target: str) -> str:
    """A redirect target on this server only (``/path``, never ``//host`` or a URL)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_text(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": message})
    await _send(send, status, body, [(b"content-type", b"application/json")])


async def _send_html(send: Send, status: int, page: str) -> None:
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (
            b"content-security-policy",
            b"default-src 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (b"x-frame-options", b"DENY"),
    ]
    await _send(send, status, page.encode(), headers)


async def _redirect(
    send: Send, target: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _send(send, 303, b"", [(b"location", target.encode("latin-1")), *(extra or [])])


def _login_page(target: str, error: str | None) -> str:
    problem = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>TradeOS — вход в Dagster</title></head>
<body><h1>Вход в Dagster UI</h1>{problem}
<form method="post" action="{LOGIN_PATH}">
<label>API-токен TradeOS (право admin):
<input name="token" type="password" autocomplete="off" required></label>
<input type="hidden" name="next" value="{html.escape(target)}">
<button type="submit">Войти</button></form>
<p>Токен выдаёт <code>uv run tradeos token create NAME</code>.</p></body></html>"""


def constant_time_equal(a: str, b: str) -> bool:
    """``a == b`` without leaking where they differ (for a configured token)."""
    return hmac.compare_digest(a.encode(), b.encode())

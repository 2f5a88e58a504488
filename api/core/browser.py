"""What the browser is told: security headers on every response, the dashboard's configuration.

Every response carries ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
``X-Frame-Options: DENY`` and a ``Content-Security-Policy`` with ``frame-ancestors 'none'``
whose ``connect-src`` allows only the page's own origin and the configured WebSocket relay
(the dashboard used to allow any ``ws:``/``wss:`` and take the relay's address from its query,
so a crafted link could send the admin token to any host).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from api.core.guard import ASGIApp, Message, Receive, Scope, Send
from tradeos_pipelines.core.settings import Settings

_HOSTNAME = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")


def request_hostname(scope: Scope) -> str | None:
    """The hostname of the request's ``Host`` header when it is a plain, safe hostname."""
    for key, value in scope.get("headers", ()):
        if key == b"host":
            host = value.decode("latin-1")
            hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if host.startswith("[") and "]:" in host:
                hostname = host.split("]:", 1)[0] + "]"
            return hostname if _HOSTNAME.fullmatch(hostname) else None
    return None


def relay_url(settings: Settings, scope: Scope) -> str | None:
    """The WebSocket relay's URL as the browser reaches it."""
    if settings.public_ws_url:
        return settings.public_ws_url
    hostname = request_hostname(scope)
    if hostname is None:
        return None
    secure = scope.get("scheme") in ("https", "wss")
    return f"{'wss' if secure else 'ws'}://{hostname}:{settings.ws_port}/ws"


def dagster_ui_url(settings: Settings) -> str:
    """The Dagster UI's base URL as the browser reaches it."""
    return (settings.public_dagster_url or settings.dagster_url).rstrip("/")


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc or not re.fullmatch(r"[\w.:\[\]-]+", parts.netloc):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings, scope: Scope) -> str:
    """The CSP of a response to ``scope``."""
    relay = relay_url(settings, scope)
    connect = " ".join(["'self'", *([o] if relay and (o := _origin(relay)) else [])])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (errors and static files too)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = content_security_policy(self.settings, scope).encode()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", ()))
                present = {k.lower() for k, _ in headers}
                for name, value in (
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", csp),
                ):
                    if name not in present:
                        headers.append((name, value))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)

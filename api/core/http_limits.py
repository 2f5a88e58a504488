"""uvicorn's HTTP protocol with a deadline for request headers and a cap on their size.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but not a connection that
sends part of a request line or headers and then stalls: it would hold a socket and a parser
forever (slowloris). :class:`GuardedHttpToolsProtocol` gives every request
``HEADER_TIMEOUT_SECONDS`` from its first byte (or from the connection) to finish its headers,
and closes a connection whose headers pass ``MAX_HEADER_BYTES``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_SECONDS = 10.0
MAX_HEADER_BYTES = 64 << 10
KEEP_ALIVE_SECONDS = 5


class _HeadersTooLarge(Exception):
    """The request line and headers passed ``MAX_HEADER_BYTES``."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with a header deadline and a header size cap."""

    header_timeout: float = HEADER_TIMEOUT_SECONDS
    max_header_bytes: int = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        # httptools wraps the exception of a callback in its own parser error, which uvicorn
        # answers with a generic message; say what was wrong instead.
        if self._header_bytes > self.max_header_bytes:
            msg = "Request headers too large."
        self._disarm_header_timer()
        super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            raise _HeadersTooLarge

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

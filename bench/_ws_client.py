"""A cheap WebSocket client for the relay benchmark: counts frames, decodes only samples.

The Python ``websockets`` client parses, unmasks-checks, UTF-8-validates and hands every frame
to a coroutine; at 143k frames/s that costs the client processes more CPU than the sidecar
spends sending them, so the benchmark measured its own clients. :class:`RawClient` does the
RFC 6455 handshake itself (``Sec-WebSocket-Key``, status 101, ``Sec-WebSocket-Accept``
checked), then its ``data_received`` only walks frame headers: it counts every event frame
(payload starting ``{"id"``), JSON-decodes only events the publisher flagged
``"sample":true`` to measure latency, answers pings and records the close code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from typing import cast

import orjson

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
EVENT_PREFIX = b'{"id"'
WELCOME_PREFIX = b'{"type":"welcome"'
SAMPLE_MARK = b'"sample":true'
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
NO_STATUS = 1005
ABNORMAL = 1006


class HandshakeError(Exception):
    """The server did not upgrade the connection properly."""


def accept_for(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value a server must answer to ``key`` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked single-frame control message (payload <= 125 bytes), as clients must send."""
    mask = os.urandom(4)
    masked = (int.from_bytes(payload) ^ int.from_bytes((mask * 32)[: len(payload)])).to_bytes(
        len(payload)
    )
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked


class RawClient(asyncio.Protocol):
    """One subscribed client; results in :attr:`events`, :attr:`close_code`, ``latencies``."""

    def __init__(self, host: str, port: int, path: str, latencies: list[float]) -> None:
        self.key = base64.b64encode(os.urandom(16))
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\n\r\n"
        ).encode()
        self.latencies = latencies
        self.events = 0
        self.close_code: int | None = None
        self.error: str | None = None
        self.upgraded = False
        self.buffer = b""
        self.fragments: list[bytes] | None = None
        loop = asyncio.get_running_loop()
        self.welcomed: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same methods.
        self.transport = cast("asyncio.Transport", transport)
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = ABNORMAL
        if not self.welcomed.done():
            self.welcomed.set_exception(
                HandshakeError(self.error or f"closed before the welcome ({self.close_code})")
            )
        if not self.lost.done():
            self.lost.set_result(None)

    def _fail(self, reason: str) -> None:
        self.error = reason
        assert self.transport is not None
        self.transport.abort()

    def _upgrade(self, head: bytes) -> None:
        status, *lines = head.decode("latin-1").split("\r\n")
        if status.split(" ", 2)[1:2] != ["101"]:
            raise HandshakeError(f"expected 101 Switching Protocols, got {status!r}")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept", "").encode() != accept_for(self.key):
            raise HandshakeError("wrong or missing Sec-WebSocket-Accept")
        if headers.get("upgrade", "").lower() != "websocket":
            raise HandshakeError("missing Upgrade: websocket")
        self.upgraded = True

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        i = 0
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = data
                return
            try:
                self._upgrade(data[:end])
            except HandshakeError as exc:
                self._fail(str(exc))
                return
            i = end + 4
        n = len(data)
        received = 0.0  # one clock read per socket read, only if it carries a sample
        while n - i >= 2:
            b0 = data[i]
            b1 = data[i + 1]
            if b1 & 0x80:
                self._fail("server frame is masked (RFC 6455 5.1)")
                return
            length = b1
            start = i + 2
            if length == 126:
                if n - i < 4:
                    break
                length = int.from_bytes(data[start : start + 2])
                start += 2
            elif length == 127:
                if n - i < 10:
                    break
                length = int.from_bytes(data[start : start + 8])
                start += 8
            end = start + length
            if end > n:
                break
            if b0 == 0x80 | OP_TEXT:  # the hot path: a whole text message in one frame
                if data.startswith(EVENT_PREFIX, start):
                    self.events += 1
                    if data.find(SAMPLE_MARK, start, end) >= 0:
                        if not received:
                            received = time.time()
                        self._sample(data[start:end], received)
                elif not self.welcomed.done() and data.startswith(WELCOME_PREFIX, start):
                    self.welcomed.set_result(None)
            else:
                self._other(b0, data[start:end])
            i = end
        if i < n:
            self.buffer = data[i:]

    def _sample(self, payload: bytes, received: float) -> None:
        self.latencies.append((received - orjson.loads(payload)["data"]["sent"]) * 1000)

    def _other(self, b0: int, payload: bytes) -> None:
        """Everything but an unfragmented text frame: fragments, ping, close."""
        opcode, fin = b0 & 0x0F, b0 & 0x80
        assert self.transport is not None
        if opcode == OP_PING:
            self.transport.write(client_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2]) if len(payload) >= 2 else NO_STATUS
            self.transport.write(client_frame(OP_CLOSE, payload[:2]))
            self.transport.close()
        elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            if opcode != OP_CONT:
                self.fragments = []
            if self.fragments is None:
                self._fail("continuation frame without a first fragment")
                return
            self.fragments.append(payload)
            if fin:
                message, self.fragments = b"".join(self.fragments), None
                self._message(message)

    def _message(self, message: bytes) -> None:
        """A reassembled fragmented message: classified like the hot path does."""
        if message.startswith(EVENT_PREFIX):
            self.events += 1
            if SAMPLE_MARK in message:
                self._sample(message, time.time())
        elif not self.welcomed.done() and message.startswith(WELCOME_PREFIX):
            self.welcomed.set_result(None)

    def close(self) -> None:
        """Leave politely (1000) at the end of the run, after the results are read."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(OP_CLOSE, (1000).to_bytes(2)))
            self.transport.close()

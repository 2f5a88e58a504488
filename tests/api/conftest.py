"""A real sidecar for API tests: both uvicorn servers on free loopback ports, in a thread.

``sidecar`` is shared by the session (its runtime reads this session's Redis namespace);
``api`` is an httpx client with the admin token; ``ws_connect`` opens ``websocket-client``
connections that are closed after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import websocket

from api.core.runtime import Runtime
from api.server import build_servers


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Sidecar:
    """A running sidecar: REST base URL, WebSocket URLs of both ports, its runtime."""

    base_url: str
    ws_url: str
    api_ws_url: str
    runtime: Runtime = field(repr=False)
    _stop: Callable[[], None] = field(repr=False)

    def stop(self) -> None:
        self._stop()


def start_sidecar(*, watch_runs: bool = False) -> Sidecar:
    """Start ``python -m api``'s servers in a background thread; returns when both listen."""
    api_sock, ws_sock = _listening_socket(), _listening_socket()
    api_port, ws_port = api_sock.getsockname()[1], ws_sock.getsockname()[1]
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        runtime = Runtime(watch_runs=watch_runs)
        await runtime.start()
        api, ws = build_servers("127.0.0.1", api_port, ws_port, runtime)
        holder.update(runtime=runtime, servers=(api, ws))
        task = asyncio.gather(api.serve(sockets=[api_sock]), ws.serve(sockets=[ws_sock]))
        while not (api.started and ws.started):  # noqa: ASYNC110 - uvicorn exposes a flag only
            await asyncio.sleep(0.02)
        ready.set()
        try:
            await task
        finally:
            await runtime.stop()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by the waiting fixture
            holder["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="sidecar", daemon=True)
    thread.start()
    if not ready.wait(60) or "error" in holder:
        raise RuntimeError(f"sidecar did not start: {holder.get('error')!r}")

    def stop() -> None:
        for server in holder["servers"]:
            server.should_exit = True
        thread.join(30)

    return Sidecar(
        base_url=f"http://127.0.0.1:{api_port}",
        ws_url=f"ws://127.0.0.1:{ws_port}/ws",
        api_ws_url=f"ws://127.0.0.1:{api_port}/ws",
        runtime=holder["runtime"],
        _stop=stop,
    )


@pytest.fixture(scope="session")
def sidecar(servers_env: dict[str, str]) -> Iterator[Sidecar]:
    server = start_sidecar()
    yield server
    server.stop()


@pytest.fixture
def api(sidecar: Sidecar, db: str, redis_url: str, admin_token: str) -> Iterator[httpx.Client]:
    """An authenticated client on an empty database and Redis namespace."""
    with httpx.Client(
        base_url=sidecar.base_url + "/api/v1",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def anonymous(sidecar: Sidecar, db: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sidecar.base_url, timeout=30) as client:
        yield client


class WsClient:
    """A ``websocket-client`` connection with JSON helpers."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self.ws = ws

    def send(self, message: Any) -> None:
        self.ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        return orjson.loads(self.ws.recv())

    def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of ``kind``, skipping heartbeats and other types."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.05, deadline - time.monotonic()))
            if message.get("type") == kind:
                return message

    def until(self, kind: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Every message (heartbeats excepted) up to and including the next one of ``kind``,
        so a test can check that nothing else came first."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not got or got[-1].get("type") != kind:
            message = self.recv(max(0.05, deadline - time.monotonic()))
            if message.get("type") != "heartbeat":
                got.append(message)
        return got

    def events(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The next ``count`` events (messages with an ``id``), skipping control messages."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            message = self.recv(max(0.05, deadline - time.monotonic()))
            if "id" in message and "channel" in message:
                got.append(message)
        return got

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def ws_connect(
    sidecar: Sidecar, redis_url: str, admin_token: str
) -> Iterator[Callable[..., WsClient]]:
    """Open WebSocket clients: ``ws_connect(channels="runs", token=..., url=..., **params)``."""
    opened: list[WsClient] = []

    def connect(
        channels: str | None = None,
        *,
        token: str | None = None,
        url: str | None = None,
        sockopt: tuple = (),
        **params: str,
    ) -> WsClient:
        query = {"token": admin_token if token is None else token, **params}
        if channels is not None:
            query["channels"] = channels
        target = (url or sidecar.ws_url) + "?" + httpx.QueryParams(query).__str__()
        client = WsClient(websocket.create_connection(target, timeout=10, sockopt=sockopt))
        opened.append(client)
        return client

    yield connect
    for client in opened:
        with contextlib.suppress(Exception):
            client.close()

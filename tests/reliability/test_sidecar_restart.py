"""The sidecar restarted under 100 WebSocket clients: none misses an event, none gets one twice.

The sidecar runs as its own process (``python -m api``), stopped with SIGTERM and started
again on the same ports. Each client does what the dashboard does: when its socket closes it
reconnects, passing the id of the last event it received as ``last_event_id``; the sidecar
replays what was published since (from the Redis stream, within its retention) before live
events. Events are published before the restart, while the sidecar is down, and after it is
back; every client must end with exactly the ids published, in order.

Events published while the clients reconnect once came twice to some of them: the replay read
them from Redis, then the relay, reading the stream on its own schedule, fanned them out live
after the replay had ended (api/live/ws_server.py now skips those too).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
import websockets

from tradeos_pipelines.core.settings import PROJECT_ROOT
from tradeos_pipelines.devstack.embedded import find_free_port
from tradeos_pipelines.event_bus import RedisEventBus

from .conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CLIENTS = 100
CHANNEL = "sync_updates"


@dataclass
class SidecarProcess:
    """``python -m api`` on fixed ports, which can be stopped and started again."""

    api_port: int = field(default_factory=find_free_port)
    ws_port: int = field(default_factory=find_free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # No Dagster here: the run watcher finds none and says so; the relay is what is tested.
        env = {**os.environ, "TRADEOS_DAGSTER_URL": f"http://127.0.0.1:{find_free_port()}"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api",
                "--port",
                str(self.api_port),
                "--ws-port",
                str(self.ws_port),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=120, what="the sidecar to answer")

    def _answers(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "the sidecar exited"
        try:
            url = f"http://127.0.0.1:{self.api_port}/api/v1/health"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture
def sidecar_process(db: str, redis_url: str) -> Iterator[SidecarProcess]:
    sidecar = SidecarProcess()
    sidecar.start()
    yield sidecar
    sidecar.stop()


@dataclass
class Client:
    """One dashboard-like subscriber: every event id it received, and how often it connected."""

    url: str
    received: list[str] = field(default_factory=list)
    connections: int = 0

    async def run(self) -> None:
        """Receive events until cancelled; when the socket closes, reconnect with
        ``last_event_id`` set to the last event received."""
        while True:
            url = self.url
            if self.received:
                url += f"&last_event_id={self.received[-1]}"
            try:
                async with websockets.connect(url, open_timeout=10) as ws:
                    assert orjson.loads(await ws.recv())["type"] == "welcome"
                    self.connections += 1
                    async for raw in ws:
                        message = orjson.loads(raw)
                        if "id" in message:
                            self.received.append(message["id"])
            except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake):
                pass
            await asyncio.sleep(0.2)  # the sidecar is down or starting: try again


def test_sidecar_restart_every_client_reconnects_and_gets_every_event_once(
    sidecar_process, admin_token, fault_report
):
    bus = RedisEventBus.from_settings()
    url = f"ws://127.0.0.1:{sidecar_process.ws_port}/ws?channels={CHANNEL}&token={admin_token}"
    clients = [Client(url) for _ in range(CLIENTS)]
    published: list[str] = []

    def publish(count: int, phase: str) -> None:
        for n in range(count):
            event_id = bus.publish(
                CHANNEL, "sync.progress", {"integration_id": "main-1c", "phase": phase, "n": n}
            )
            assert event_id is not None
            published.append(event_id)

    stopped_at: list[float] = []
    caught_up: list[float] = []

    async def scenario() -> None:
        tasks = [asyncio.create_task(c.run()) for c in clients]
        try:
            await _wait(lambda: all(c.connections == 1 for c in clients), "100 clients connected")
            await asyncio.to_thread(publish, 10, "before")
            await _wait(lambda: all(len(c.received) == 10 for c in clients), "the first events")

            stopped_at.append(time.monotonic())
            await asyncio.to_thread(sidecar_process.stop)
            await asyncio.to_thread(publish, 10, "down")
            await asyncio.to_thread(sidecar_process.start)
            await asyncio.to_thread(publish, 5, "starting")  # while the clients reconnect
            await _wait(lambda: all(c.connections == 2 for c in clients), "100 clients reconnected")
            await asyncio.to_thread(publish, 10, "after")
            # One connection delivers in order: a duplicate would come before the last event.
            await _wait(
                lambda: all(c.received and c.received[-1] == published[-1] for c in clients),
                "every client to receive the last event",
            )
            caught_up.append(time.monotonic())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())

    fault_report.record(
        f"sidecar restarted under {CLIENTS} WebSocket clients",
        rows_lost=max(len(set(published) - set(c.received)) for c in clients),
        rows_half_written=max(len(c.received) - len(set(c.received)) for c in clients),
        recovered_in_s=caught_up[0] - stopped_at[0],
        recovery="sidecar stopped → every client had every event (rows: events; half-written: "
        "events received twice)",
    )
    assert len(published) == 35
    for client in clients:
        assert client.received == published
        assert client.connections == 2


async def _wait(condition: Callable[[], object], what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after a minute."""
    try:
        async with asyncio.timeout(60):
            while not condition():  # noqa: ASYNC110 - the clients keep plain counters
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None

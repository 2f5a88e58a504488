"""Fixtures of the 1C client tests: an asyncio Redis client and a client factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tradeos_pipelines.emulators.http_service import EmulatorServer
from tradeos_pipelines.sources.http_service.client import OneCClient, RetryPolicy


class RecordingSleep:
    """Stands in for asyncio.sleep: records the delays the client asked for, waits none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def make_client(sleeps: RecordingSleep) -> Callable[..., OneCClient]:
    """``make_client(emulator, **options)``: a client of that emulator with the test API key,
    recorded (not real) retry sleeps and jitter fixed at its maximum."""

    def make(server: EmulatorServer, **options: Any) -> OneCClient:
        if "username" not in options:
            options.setdefault("api_key", "test-key")
        options.setdefault("sleep", sleeps)
        options.setdefault("jitter", lambda: 1.0)
        options.setdefault("retry", RetryPolicy(attempts=4, base_delay=0.5, max_delay=10))
        options.setdefault("timeout", 10)
        options.setdefault("integration_id", "main-1c")
        return OneCClient(server.base_url, **options)

    return make

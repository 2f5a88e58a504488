"""The circuit breaker: transitions, events, and the state shared by two processes."""

from __future__ import annotations

import json
import subprocess
import sys

import orjson
import pytest

from tradeos_pipelines.event_bus import AsyncRedisEventBus, stream_key
from tradeos_pipelines.sources.common.breaker import CircuitBreaker, circuit_state
from tradeos_pipelines.sources.common.errors import (
    CircuitOpenError,
    OneCAuthError,
    OneCUnavailable,
)

PEER = """
import asyncio, json, sys
import redis.asyncio as aioredis
from tradeos_pipelines.sources.common.breaker import CircuitBreaker, circuit_state
from tradeos_pipelines.sources.common.errors import CircuitOpenError

async def main(url, action, now):
    redis = aioredis.Redis.from_url(url)
    breaker = CircuitBreaker(
        redis, "main-1c", failure_threshold=2, cooldown_seconds=30, clock=lambda: now
    )
    out = {"before": await circuit_state(redis, "main-1c")}
    try:
        out["probe"] = await breaker.admit()
        if action == "succeed":
            await breaker.record_success()
    except CircuitOpenError as exc:
        out["refused"] = str(exc)
    out["after"] = (await circuit_state(redis, "main-1c"))["state"]
    print(json.dumps(out))
    await redis.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def peer(redis_url: str, action: str, now: float) -> dict:
    """Run a breaker in another Python process (same Redis, same namespace)."""
    done = subprocess.run(
        [sys.executable, "-c", PEER, redis_url, action, str(now)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def events(aredis, channel):
    entries = await aredis.xrange(stream_key(channel))
    return [orjson.loads(fields[b"e"]) for _, fields in entries]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(aredis, clock) -> CircuitBreaker:
    return CircuitBreaker(
        aredis,
        "main-1c",
        failure_threshold=2,
        cooldown_seconds=30,
        publisher=AsyncRedisEventBus(aredis),
        clock=clock,
    )


async def test_opens_after_consecutive_failures_and_two_processes_agree(
    emulator, make_client, breaker, clock, aredis, redis_url
):
    emulator.control.inject_fault("503", count=100)
    async with make_client(emulator, breaker=breaker) as client:
        for _ in range(2):
            with pytest.raises(OneCUnavailable):
                await client.health()
        with pytest.raises(CircuitOpenError, match="circuit open") as refused:
            await client.health()
    assert refused.value.retry_at.timestamp() == clock.now + 30
    # Two calls × 4 attempts reached 1C; the third call never left this process.
    assert emulator.control.counters()["requests"]["GET /hs/api/health"] == 8

    state = await circuit_state(aredis, "main-1c")
    assert state["state"] == "open" and state["failures"] == 2
    assert "HTTP 503" in state["last_error"]

    # Another process sees it open and is refused too.
    other = peer(redis_url, "probe", clock.now + 10)
    assert other["before"]["state"] == "open" and "refused" in other
    # After the cool-down the other process takes the single probe...
    other = peer(redis_url, "probe", clock.now + 31)
    assert other["probe"] is True and other["after"] == "half_open"
    # ...so this one is refused while that probe is in flight.
    clock.now += 32
    with pytest.raises(CircuitOpenError, match="probe in flight"):
        await breaker.admit()
    # The probe succeeds in the other process: closed for everyone.
    clock.now += 61  # the first probe's lease ran out (its process never reported)
    other = peer(redis_url, "succeed", clock.now)
    assert other["probe"] is True and other["after"] == "closed"
    assert (await circuit_state(aredis, "main-1c"))["state"] == "closed"

    status = await events(aredis, "integration_status")
    transitions = [(e["data"]["previous_state"], e["data"]["state"]) for e in status]
    assert transitions[0] == ("closed", "open")
    assert ("open", "half_open") in transitions
    alerts = await events(aredis, "alerts")
    assert len(alerts) == 1 and alerts[0]["type"] == "alert"
    assert alerts[0]["data"]["kind"] == "circuit_open"


async def test_failed_probe_reopens_and_successful_probe_closes(breaker, clock, aredis):
    for _ in range(2):
        await breaker.admit()
        await breaker.record_failure("HTTP 503")
    clock.now += 30
    assert await breaker.admit() is True
    await breaker.record_failure("HTTP 502 again")
    state = await circuit_state(aredis, "main-1c")
    assert state["state"] == "open" and state["last_error"] == "HTTP 502 again"
    with pytest.raises(CircuitOpenError):
        await breaker.admit()
    clock.now += 30
    assert await breaker.admit() is True
    await breaker.record_success()
    assert await circuit_state(aredis, "main-1c") == {
        "state": "closed",
        "failures": 0,
        "opened_at": None,
        "retry_at": None,
        "last_error": None,
        "first_error": None,
        "base_url": None,
    }
    assert await breaker.admit() is False


async def test_a_success_resets_the_consecutive_count(breaker, aredis):
    await breaker.admit()
    await breaker.record_failure("timeout")
    await breaker.admit()
    await breaker.record_success()
    await breaker.admit()
    await breaker.record_failure("timeout")
    assert (await circuit_state(aredis, "main-1c"))["state"] == "closed"


async def test_auth_and_validation_errors_do_not_count(emulator, make_client, breaker, aredis):
    async with make_client(emulator, api_key="wrong", breaker=breaker) as client:
        for _ in range(3):
            with pytest.raises(OneCAuthError):
                await client.health()
    assert (await circuit_state(aredis, "main-1c"))["failures"] == 0


async def test_breaker_keys_use_the_session_namespace(breaker, aredis):
    from tradeos_pipelines.core.settings import get_settings

    await breaker.admit()
    await breaker.record_failure("x")
    namespace = get_settings().redis_namespace
    assert namespace.startswith("tradeos-test-")
    assert await aredis.exists(f"{namespace}:onec:breaker:main-1c") == 1


async def test_a_refusal_leads_with_the_first_cause_and_names_the_1c_url(clock, aredis):
    # A query string may carry a token: the address is named without it.
    breaker = CircuitBreaker(
        aredis,
        "main-1c",
        failure_threshold=2,
        cooldown_seconds=30,
        publisher=AsyncRedisEventBus(aredis),
        clock=clock,
        base_url="http://1c.example:8080/trade/?token=s3cret",
    )
    await breaker.record_failure("ConnectError: connection refused")
    await breaker.record_failure("HTTP 503: Service Unavailable")
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.admit()
    assert str(refused.value) == (
        "ConnectError: connection refused — 1C http://1c.example:8080/trade ('main-1c'): "
        "circuit open after 2 failures in a row; calls are refused until "
        "2027-01-15T08:00:30+00:00"
    )
    assert refused.value.first_error == "ConnectError: connection refused"
    state = await circuit_state(aredis, "main-1c")
    assert (state["first_error"], state["last_error"], state["base_url"]) == (
        "ConnectError: connection refused",
        "HTTP 503: Service Unavailable",
        "http://1c.example:8080/trade",
    )
    (alert,) = await events(aredis, "alerts")
    assert alert["data"]["message"] == (
        "1C «main-1c» (http://1c.example:8080/trade) не отвечает: 2 ошибок подряд, запросы "
        "приостановлены до 2027-01-15T08:00:30.000+00:00. "
        "Первая ошибка: ConnectError: connection refused"
    )
    (opened,) = await events(aredis, "integration_status")
    assert opened["data"]["first_error"] == "ConnectError: connection refused"
    # A failed probe reopens it; the streak's first cause still leads.
    clock.now += 30
    assert await breaker.admit() is True
    await breaker.record_failure("ReadTimeout")
    with pytest.raises(CircuitOpenError, match=r"^ConnectError: connection refused — 1C http"):
        await breaker.admit()


async def test_the_client_names_its_base_url_when_refused(
    emulator, make_client, aredis, monkeypatch
):
    from tradeos_pipelines.core.settings import get_settings

    monkeypatch.setenv("TRADEOS_BREAKER_FAILURE_THRESHOLD", "2")
    get_settings.cache_clear()
    emulator.control.inject_fault("503", count=100)
    try:
        async with make_client(emulator, redis=aredis) as client:
            for _ in range(2):
                with pytest.raises(OneCUnavailable):
                    await client.health()
            with pytest.raises(CircuitOpenError) as refused:
                await client.health()
    finally:
        get_settings.cache_clear()
    first = (await circuit_state(aredis, "main-1c"))["first_error"]
    assert first.startswith("HTTP 503")
    assert str(refused.value).startswith(f"{first} — 1C {emulator.base_url} ('main-1c'): ")
    assert "test-key" not in str(refused.value)

"""The retry budget: a call to 1C rides out an outage of minutes, by time, every attempt logged.

The emulator's fault injection serves the failures over real HTTP; the client's sleep is the
recording stand-in of ``conftest.py`` (the budget counts the waits it asked for, so the tests
check minutes of backoff without waiting them).
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select

from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.sources.common.breaker import CircuitBreaker, circuit_state
from tradeos_pipelines.sources.common.errors import CircuitOpenError, OneCUnavailable
from tradeos_pipelines.sources.common.transport import DEFAULT_RETRY_BUDGET_SECONDS
from tradeos_pipelines.sources.http_service.client import OneCClient, RetryPolicy
from tradeos_pipelines.storage.request_log import IntegrationLogWriter
from tradeos_pipelines.storage.tables import IntegrationLog


def _outage(emulator, path: str = "/health", retry_after: int = 3) -> None:
    """What a 1C restart looks like from outside: two 500s, a 502 page, a 429."""
    emulator.control.inject_fault("500", count=2, path=path)
    emulator.control.inject_fault("502", path=path)
    emulator.control.inject_fault("429", path=path, retry_after=retry_after)


async def test_a_short_outage_is_ridden_out_and_every_attempt_is_logged(
    emulator, make_client, sleeps, db
):
    _outage(emulator, path="/nomenclature")
    writer = IntegrationLogWriter(db, batch_size=200, flush_interval=60)
    async with make_client(emulator, retry=RetryPolicy(), request_log=writer) as client:
        items = [i async for page in client.iter_nomenclature(page_size=1000) for i in page.items]
    await writer.aclose()

    assert len(items) == 204  # the 200 goods and 4 folders of the emulator's catalogue
    # Full jitter at its maximum: the ceilings 0.5, 1, 2; then what Retry-After asked.
    assert sleeps.delays == [0.5, 1.0, 2.0, 3.0]
    engine = create_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(select(IntegrationLog).order_by(IntegrationLog.id)).all()
    engine.dispose()
    assert [(r.status_code, r.attempt) for r in rows] == [
        (500, 1),
        (500, 2),
        (502, 3),
        (429, 4),
        (200, 5),
    ]
    assert [r.error.split(":")[0] if r.error else None for r in rows] == [
        "HTTP 500",
        "HTTP 500",
        "HTTP 502",
        "HTTP 429",
        None,
    ]
    assert "HTML page: 502 Bad Gateway" in rows[2].error


async def test_the_budget_is_time_not_a_count_of_attempts(emulator, make_client, sleeps):
    emulator.control.inject_fault("503", count=100)
    policy = RetryPolicy(budget_seconds=10, base_delay=1, max_delay=4)
    async with make_client(emulator, retry=policy) as client:
        with pytest.raises(OneCUnavailable) as caught:
            await client.health()

    # 1 + 2 + 4 = 7 s waited; the last wait is cut to what is left of the 10 s (less the few
    # milliseconds the attempts themselves took), then one last attempt.
    assert sleeps.delays[:3] == [1.0, 2.0, 4.0]
    assert len(sleeps.delays) == 4
    assert sleeps.delays[3] == pytest.approx(3.0, abs=0.2)
    assert caught.value.attempts == 5 and caught.value.status_code == 503
    assert "failed 5 time(s)" in str(caught.value)
    assert "retry budget of 10 s spent" in str(caught.value)
    assert emulator.control.counters()["requests"] == {"GET /hs/api/health": 5}


async def test_the_default_budget_rides_out_two_minutes_of_503(emulator, make_client, sleeps):
    # 1C restarting for ~100 s: with the default policy the waits reach 100 s before it ends.
    async with make_client(emulator, retry=RetryPolicy()) as client:
        emulator.control.inject_fault("503", count=11)
        assert (await client.health()).status == "ok"
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0, 15.0, 15.0, 15.0]
    assert sum(sleeps.delays) == 105.5
    assert RetryPolicy().budget_seconds == DEFAULT_RETRY_BUDGET_SECONDS == 120.0


async def test_retry_after_is_capped(emulator, make_client, sleeps):
    emulator.control.inject_fault("429", retry_after=600)
    async with make_client(emulator, retry=RetryPolicy(max_retry_after=45)) as client:
        assert (await client.health()).status == "ok"
    assert sleeps.delays == [45.0]


async def test_retry_after_beyond_the_budget_ends_the_call_at_once(emulator, make_client, sleeps):
    emulator.control.inject_fault("429", retry_after=30)
    async with make_client(emulator, retry=RetryPolicy(budget_seconds=10)) as client:
        with pytest.raises(OneCUnavailable, match="asked to retry after 30 s") as caught:
            await client.health()
    assert sleeps.delays == []
    assert caught.value.attempts == 1 and caught.value.status_code == 429


async def test_a_breaker_opened_by_another_process_stops_the_retries(emulator, make_client, aredis):
    emulator.control.inject_fault("503", count=100)
    other = CircuitBreaker(aredis, "main-1c", failure_threshold=1, cooldown_seconds=60)
    delays: list[float] = []

    async def sleep_while_the_other_gives_up(seconds: float) -> None:
        delays.append(seconds)
        await other.record_failure("HTTP 503 seen by another run")

    breaker = CircuitBreaker(aredis, "main-1c", failure_threshold=1, cooldown_seconds=60)
    async with make_client(
        emulator, retry=RetryPolicy(), breaker=breaker, sleep=sleep_while_the_other_gives_up
    ) as client:
        with pytest.raises(CircuitOpenError, match="circuit opened while retrying"):
            await client.health()
    assert delays == [0.5]
    assert emulator.control.counters()["requests"] == {"GET /hs/api/health": 1}


async def test_a_long_outage_still_opens_the_breaker(emulator, make_client, aredis, sleeps):
    emulator.control.inject_fault("503", count=100)
    breaker = CircuitBreaker(aredis, "main-1c", failure_threshold=2, cooldown_seconds=60)
    policy = RetryPolicy(budget_seconds=5, base_delay=1, max_delay=4)
    async with make_client(emulator, retry=policy, breaker=breaker) as client:
        for _ in range(2):  # each call spends its whole budget, then counts as one failure
            with pytest.raises(OneCUnavailable):
                await client.health()
        requests = emulator.control.counters()["requests"]["GET /hs/api/health"]
        with pytest.raises(CircuitOpenError):
            await client.health()
    assert requests == 8  # 4 attempts per call: waits 1, 2 and the 2 s left of 5
    assert emulator.control.counters()["requests"]["GET /hs/api/health"] == 8
    state = await circuit_state(aredis, "main-1c")
    assert (state["state"], state["failures"]) == ("open", 2)


def test_a_stored_integration_retries_for_its_own_budget():
    config = IntegrationConfig(
        id="main-1c",
        name="Main",
        base_url="http://127.0.0.1:1/trade",
        auth_type="api_key",
        enabled=True,
        timezone="Europe/Moscow",
        conflict_policy="onec_wins",
        cache_ttl_seconds=60,
        page_size=100,
        timeout_seconds=30,
        retry_budget_seconds=42,
        api_key="k",
    )
    assert OneCClient.from_config(config).retry == RetryPolicy(budget_seconds=42)
    interactive = OneCClient.from_config(config, retry=RetryPolicy.interactive())
    assert interactive.retry == RetryPolicy(
        budget_seconds=10, max_delay=4, max_retry_after=4, attempts=4
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"budget_seconds": -1}, "budget_seconds must be 0 or more, got -1"),
        ({"attempts": 0}, "attempts must be at least 1, got 0"),
        ({"base_delay": -0.5}, "must be 0 or more"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(options, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**options)

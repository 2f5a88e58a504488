"""Run retries: a transient failure is tried again in the same run; a 401 never is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterEventType, materialize
from sqlalchemy import select

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.defs.assets import tradeos_products
from tradeos_pipelines.defs.retries import MAX_RUN_RETRY_WAIT_S, run_retry_wait
from tradeos_pipelines.engine import SyncFailed
from tradeos_pipelines.storage.tables import SyncLog


@pytest.fixture
def quick_retries(monkeypatch):
    """Two run retries without waiting (the wait itself is checked by run_retry_wait)."""
    monkeypatch.setenv("TRADEOS_RUN_RETRIES", "2")
    monkeypatch.setenv("TRADEOS_RUN_RETRY_DELAY_SECONDS", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _materialize(instance, tradeos):
    return materialize(
        [tradeos_products],
        partition_key="main-1c",
        instance=instance,
        resources={"tradeos": tradeos},
        raise_on_error=False,
    )


def _logs(session, run_id: str) -> list[tuple[str, str | None]]:
    rows = session.scalars(select(SyncLog).where(SyncLog.run_id == run_id).order_by(SyncLog.id))
    return [(r.status, (r.error or "")[:40] or None) for r in rows]


def _retries(result) -> int:
    return sum(1 for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY)


def test_1c_unavailable_past_its_budget_is_retried_in_the_same_run(
    instance, tradeos, session, partitions, make_integration, emulator, quick_retries
):
    # A budget of 0: one attempt per call, so the 503 fails the first sync of the run.
    make_integration("main-1c", base_url=emulator.base_url, retry_budget_seconds=0)
    partitions("main-1c")
    emulator.control.inject_fault("503", path="/nomenclature")

    result = _materialize(instance, tradeos)

    assert result.success
    assert _retries(result) == 1
    assert _logs(session, result.run_id) == [
        ("failed", "1C: 1C 'main-1c' unavailable: GET /hs/ap"),
        ("success", None),
    ]


def test_transient_failures_give_up_after_the_run_retries(
    instance, tradeos, session, partitions, make_integration, emulator, quick_retries
):
    make_integration("main-1c", base_url=emulator.base_url, retry_budget_seconds=0)
    partitions("main-1c")
    emulator.control.inject_fault("503", count=10, path="/nomenclature")

    result = _materialize(instance, tradeos)

    assert not result.success
    assert _retries(result) == 2
    assert [status for status, _ in _logs(session, result.run_id)] == ["failed"] * 3
    failure = result.get_step_failure_events()[0]
    assert "gave up after 2 run retries" in failure.step_failure_data.user_failure_data.description


def test_a_wrong_api_key_is_never_retried(
    instance, tradeos, session, partitions, make_integration, emulator, quick_retries
):
    make_integration("main-1c", base_url=emulator.base_url, api_key="wrong")
    partitions("main-1c")

    result = _materialize(instance, tradeos)

    assert not result.success
    assert _retries(result) == 0
    assert [status for status, _ in _logs(session, result.run_id)] == ["failed"]
    assert emulator.control.counters()["requests"] == {"GET /hs/api/nomenclature": 1}


def test_the_retry_waits_back_off_and_respect_an_open_circuit():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    unavailable = SyncFailed(1, "1C: unavailable", transient=True)
    assert [run_retry_wait(unavailable, n, 60, now) for n in range(4)] == [60, 120, 240, 480]
    assert run_retry_wait(unavailable, 10, 60, now) == MAX_RUN_RETRY_WAIT_S
    opened = SyncFailed(
        2, "1C: circuit open", transient=True, retry_at=now + timedelta(seconds=300)
    )
    # Earlier than the circuit's retry_at the retry would be refused without asking 1C.
    assert run_retry_wait(opened, 0, 60, now) == 301.0
    assert run_retry_wait(opened, 3, 60, now) == 480

"""The run queue with the real ``dagster-webserver`` and ``dagster-daemon`` (subprocesses, the
project's dagster.yaml) and the real sidecar routes.

- "sync now" through ``POST /api/v1/integrations/{id}/sync``: the run is created, dequeued,
  commits 1C's changes and succeeds;
- the daemon down while a 1C webhook and a "sync now" arrive: the webserver still creates the
  manual run (queued in the instance), the webhook waits in ``sync_requests``; when the daemon
  returns, each becomes exactly one run and both commit;
- the queue's tag limits: the runs of one lane never overlap, and a manual run overtakes the
  scheduled runs queued before it.

One webserver and daemon serve the module. The change sensor ticks once a day here and the
schedules once a year, so every run is one the test asked for (sensor-driven runs are covered
by tests/dagster/test_e2e.py).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from api.services.webhooks import SIGNATURE_HEADER, sign
from tests.dagster.processes import DagsterProcesses, dagster_processes, launch_run
from tradeos_pipelines.core.settings import get_settings, today_in_schedule_timezone
from tradeos_pipelines.core.vocabulary import partition_tags, run_tags
from tradeos_pipelines.engine import sync_nomenclature, sync_stock

from .conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

INTEGRATION = "main-1c"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
NEVER = "0 0 1 1 *"  # once a year: the schedules stay out of the way


@pytest.fixture(scope="module")
def dagster(
    servers_env: dict[str, str], dagster_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DagsterProcesses]:
    env = {
        "TRADEOS_CHANGE_SENSOR_INTERVAL_SECONDS": "86400",
        "TRADEOS_REQUEST_SENSOR_INTERVAL_SECONDS": "2",
        "TRADEOS_NOMENCLATURE_SCHEDULE_CRON": NEVER,
        "TRADEOS_STOCK_ORDERS_SCHEDULE_CRON": NEVER,
        # CI machines are shared: give the code server time to answer under load.
        "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
        "DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS": "180",
        "DAGSTER_SCHEDULE_GRPC_TIMEOUT_SECONDS": "180",
    }
    with dagster_processes(tmp_path_factory.mktemp("dagster-logs"), env) as processes:
        yield processes


@pytest.fixture
def instance(dagster_instance: DagsterInstance) -> DagsterInstance:
    """The session's instance with no runs left by earlier tests."""
    dagster_instance.wipe()
    return dagster_instance


@pytest.fixture
def synced(dagster, instance, make_integration, emulator, api, monkeypatch) -> Callable[[], None]:
    """``main-1c`` on the emulator, its catalogue and stock synced before any run, the sidecar
    pointed at the webserver, and the change sensor's one tick of the day behind us (so it
    cannot pick up the changes the test makes)."""
    monkeypatch.setenv("TRADEOS_DAGSTER_URL", dagster.url)
    get_settings.cache_clear()
    make_integration(INTEGRATION, base_url=emulator.base_url, page_size=50)
    sync_nomenclature(INTEGRATION)
    sync_stock(INTEGRATION)
    wait_for(
        lambda: sensor_ticked(instance, "onec_changes"),
        timeout=300,
        what="the change sensor's first tick",
    )
    yield
    get_settings.cache_clear()


def sensor_ticked(instance: DagsterInstance, name: str) -> int:
    """How many finished ticks sensor ``name`` has."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == name:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100)
            return sum(t.status != TickStatus.STARTED for t in ticks)
    return 0


def wait_finished(instance: DagsterInstance, run_ids: list[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    for run_id in run_ids:
        while instance.get_run_by_id(run_id).status not in FINISHED:
            assert time.monotonic() < deadline, f"run {run_id} did not finish in {timeout} s"
            time.sleep(0.5)


def lane_runs(instance: DagsterInstance, entity: str) -> list[str]:
    runs = instance.get_runs(filters=RunsFilter(tags={"tradeos/lane": f"{INTEGRATION}:{entity}"}))
    return sorted(r.run_id for r in runs)


def committed(sql, run_id: str) -> tuple[str, str, int, int]:
    """The entity, status and created/updated counts of the sync a run committed."""
    rows = sql("SELECT entity, status, created, updated FROM sync_logs WHERE run_id = :r", r=run_id)
    assert len(rows) == 1, rows
    return tuple(rows[0])


def test_sync_now_through_the_route_is_dequeued_commits_and_succeeds(
    synced, dagster, instance, api, emulator, sql
):
    emulator.control.change_items(30)

    answer = api.post(f"/integrations/{INTEGRATION}/sync", json={"entities": ["nomenclature"]})

    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["request_id"] is None
    [run_id] = body["run_ids"]
    wait_finished(instance, [run_id])
    run = instance.get_run_by_id(run_id)
    assert run.status == DagsterRunStatus.SUCCESS
    assert (run.tags["tradeos/source"], run.tags["dagster/priority"]) == ("manual", "10")
    assert committed(sql, run_id) == ("nomenclature", "success", 0, 30)
    assert lane_runs(instance, "nomenclature") == [run_id]


def test_daemon_down_a_webhook_and_a_sync_now_each_become_one_run_when_it_returns(
    synced, dagster, instance, api, emulator, sql, fault_report
):
    dagster.stop_daemon()
    emulator.control.change_items(40)
    emulator.control.change_stock(30)
    # 1C says its catalogue changed; the sidecar queues the request for the request sensor.
    hook = json.dumps({"entities": ["nomenclature"], "sent_at": datetime.now(UTC).isoformat()})
    webhook = api.post(
        f"/webhooks/1c/{INTEGRATION}",
        content=hook,
        headers={SIGNATURE_HEADER: sign("webhook-secret", hook.encode())},
    )
    assert webhook.status_code == 202, webhook.text
    request_id = webhook.json()["request_id"]
    assert webhook.json()["run_ids"] == []
    # A person clicks "sync now" for stock: the webserver creates the run, queued.
    manual = api.post(f"/integrations/{INTEGRATION}/sync", json={"entities": ["stock"]})
    assert manual.status_code == 202, manual.text
    [manual_run] = manual.json()["run_ids"]

    # Nothing moves while the daemon is down: the run waits in the queue, the request unpicked.
    time.sleep(5)
    assert instance.get_run_by_id(manual_run).status == DagsterRunStatus.QUEUED
    assert sql("SELECT picked_at, run_ids FROM sync_requests WHERE id = :i", i=request_id) == [
        (None, None)
    ]

    dagster.start_daemon()
    restarted_at = time.monotonic()

    def recorded_runs() -> list[str] | None:
        return sql("SELECT run_ids FROM sync_requests WHERE id = :i", i=request_id)[0][0]

    wait_for(recorded_runs, timeout=300, what="the request sensor to pick the webhook")
    [webhook_run] = recorded_runs()
    wait_finished(instance, [manual_run, webhook_run])
    stock_done, goods_done = committed(sql, manual_run), committed(sql, webhook_run)
    fault_report.record(
        "Dagster daemon down while a webhook and a sync now arrive",
        rows_lost=(30 - stock_done[3]) + (40 - goods_done[3]),
        rows_half_written=0,
        recovered_in_s=time.monotonic() - restarted_at,
        recovery="daemon back → both runs committed (70 changes); runs are all-or-nothing",
    )
    # The request sensor ticks on: the same request never becomes a second run.
    ticks = sensor_ticked(instance, "sync_requests")
    wait_for(
        lambda: sensor_ticked(instance, "sync_requests") >= ticks + 2,
        timeout=120,
        what="two more ticks of the request sensor",
    )

    assert instance.get_run_by_id(manual_run).status == DagsterRunStatus.SUCCESS
    assert instance.get_run_by_id(webhook_run).status == DagsterRunStatus.SUCCESS
    assert instance.get_run_by_id(webhook_run).tags["tradeos/source"] == "webhook"
    assert lane_runs(instance, "stock") == [manual_run]
    assert lane_runs(instance, "nomenclature") == [webhook_run]
    assert committed(sql, manual_run) == ("stock", "success", 0, 30)
    assert committed(sql, webhook_run) == ("nomenclature", "success", 0, 40)


def launch(dagster_url: str, entity: str, source: str) -> str:
    """Queue a run of ``entity`` for ``main-1c`` through the webserver, tagged as ``source``
    tags it (a schedule's run: priority 0; a person's: 10)."""
    tags = {
        **run_tags(INTEGRATION, entity, full=False, source=source),
        **partition_tags(INTEGRATION, entity, today_in_schedule_timezone()),
    }
    return launch_run(dagster_url, f"{entity}_sync", tags)


def test_one_lane_runs_one_at_a_time_and_a_manual_run_overtakes_queued_scheduled_ones(
    synced, dagster, instance, api, emulator
):
    # The first scheduled run holds the lane while 1C is slow to answer its first page.
    emulator.control.inject_fault("slow", 1, path="nomenclature", seconds=8)
    holder = launch(dagster.url, "nomenclature", "schedule")
    wait_for(
        lambda: emulator.control.counters()["faults_served"].get("slow", 0) == 1,
        timeout=300,
        what="the first scheduled run to be reading 1C",
    )
    queued = [launch(dagster.url, "nomenclature", "schedule") for _ in range(2)]
    answer = api.post(f"/integrations/{INTEGRATION}/sync", json={"entities": ["nomenclature"]})
    assert answer.status_code == 202, answer.text
    [manual] = answer.json()["run_ids"]
    wait_finished(instance, [holder, *queued, manual])

    records = sorted(
        (instance.get_run_record_by_id(r) for r in [holder, *queued, manual]),
        key=lambda r: r.start_time,
    )
    assert [r.dagster_run.status for r in records] == [DagsterRunStatus.SUCCESS] * 4
    # The scheduled runs were queued before the manual one, yet it started right after the run
    # that held the lane.
    created = {r.dagster_run.run_id: r.create_timestamp for r in records}
    assert all(created[q] < created[manual] for q in queued)
    assert [r.dagster_run.run_id for r in records][:2] == [holder, manual]
    # Never two at once: each started after the one before it had ended.
    for earlier, later in itertools.pairwise(records):
        assert later.start_time >= earlier.end_time, (earlier, later)
    assert lane_runs(instance, "nomenclature") == sorted([holder, *queued, manual])

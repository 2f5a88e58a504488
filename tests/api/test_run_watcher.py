"""A real Dagster run's status reaches a WebSocket client within seconds (run watcher)."""

from __future__ import annotations

import time

import dagster as dg
import httpx
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.test_utils import create_run_for_test

from tests.api.conftest import start_sidecar


@dg.op
def say_hello() -> str:
    return "привет"


@dg.op
def explode() -> None:
    raise RuntimeError("boom")


@dg.job(tags={"tradeos/integration": "main-1c", "tradeos/entity": "stock"})
def trivial_sync() -> None:
    say_hello()


@dg.job
def failing_sync() -> None:
    explode()


@pytest.fixture
def watching_sidecar(dagster_instance, servers_env, redis_url):
    server = start_sidecar(watch_runs=True)
    assert server.runtime.watcher is not None
    yield server
    server.stop()


def _run_events(client, run_id, wanted, timeout=15.0):
    deadline = time.monotonic() + timeout
    seen = {}
    while set(wanted) - set(seen):
        for event in client.events(1, timeout=max(0.1, deadline - time.monotonic())):
            if event["data"].get("run_id") == run_id:
                seen[event["type"]] = (event, time.monotonic())
    return seen


def test_run_status_changes_reach_websocket_clients(watching_sidecar, dagster_instance, ws_connect):
    client = ws_connect("runs", url=watching_sidecar.ws_url)
    client.recv_type("welcome")

    result = trivial_sync.execute_in_process(instance=dagster_instance)
    finished = time.monotonic()
    assert result.success
    seen = _run_events(client, result.run_id, ["run.started", "run.succeeded"])
    event, arrived = seen["run.succeeded"]
    # The goal is within 2 s of the change (watcher interval 0.5 s); the limit is generous so a
    # loaded CI machine does not fail it. A lost or stuck watcher still fails it.
    assert arrived - finished < 15.0
    assert event["channel"] == "runs"
    data = event["data"]
    assert data["job_name"] == "trivial_sync" and data["status"] == "SUCCESS"
    assert data["tags"] == {"integration": "main-1c", "entity": "stock"}
    assert data["integration_id"] == "main-1c"

    failed = failing_sync.execute_in_process(instance=dagster_instance, raise_on_error=False)
    assert not failed.success
    seen = _run_events(client, failed.run_id, ["run.failed"])
    assert seen["run.failed"][0]["data"]["status"] == "FAILURE"


def test_queued_and_canceled_runs_are_announced(watching_sidecar, dagster_instance, ws_connect):
    client = ws_connect("runs", url=watching_sidecar.ws_url)
    client.recv_type("welcome")
    run = dagster_instance.create_run_for_job(trivial_sync, tags={"tradeos/entity": "stock"})
    # The event the queued run coordinator writes when "sync now" queues a run (stored
    # directly: submitting for real needs a code location server), then a cancellation.
    dagster_instance.event_log_storage.store_event(
        EventLogEntry(
            error_info=None,
            level="DEBUG",
            user_message="",
            run_id=run.run_id,
            timestamp=time.time(),
            dagster_event=DagsterEvent(DagsterEventType.RUN_ENQUEUED.value, job_name=run.job_name),
        )
    )
    seen = _run_events(client, run.run_id, ["run.queued"])
    assert seen["run.queued"][0]["data"]["status"] == "QUEUED"
    dagster_instance.report_run_canceled(run)
    seen = _run_events(client, run.run_id, ["run.canceled"])
    assert seen["run.canceled"][0]["data"]["status"] == "CANCELED"


def _stored_run(instance, job_name, tags, status):
    """A run stored as the queued run coordinator leaves it (queuing for real needs a code
    location server)."""
    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("tradeos_pipelines"), "__repository__"),
        job_name,
    )
    run = create_run_for_test(instance, job_name=job_name, tags=tags, remote_job_origin=origin)
    event = {
        dg.DagsterRunStatus.QUEUED: DagsterEventType.RUN_ENQUEUED,
        dg.DagsterRunStatus.STARTED: DagsterEventType.RUN_START,
    }[status]
    instance.run_storage.handle_run_event(run.run_id, DagsterEvent(event.value, job_name=job_name))
    return instance.get_run_by_id(run.run_id)


def test_health_counts_the_runs_dagster_holds_for_each_entity(
    watching_sidecar, dagster_instance, make_integration, admin_token, db
):
    """After a reload the dashboard learns from the snapshot how many runs wait: the sidecar
    asks the Dagster instance, not only the live events it may have missed."""
    make_integration("queue-1c")
    tags = {"tradeos/integration": "queue-1c", "tradeos/entity": "stock"}
    queued = [
        _stored_run(dagster_instance, "stock_sync", tags, dg.DagsterRunStatus.QUEUED)
        for _ in range(3)
    ]
    running = _stored_run(
        dagster_instance,
        "nomenclature_sync",
        {**tags, "tradeos/entity": "nomenclature"},
        dg.DagsterRunStatus.STARTED,
    )
    # Another integration's run is not counted.
    other = _stored_run(
        dagster_instance,
        "stock_sync",
        {**tags, "tradeos/integration": "other-1c"},
        dg.DagsterRunStatus.QUEUED,
    )
    try:
        with httpx.Client(
            base_url=watching_sidecar.base_url + "/api/v1",
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=30,
        ) as api:
            health = api.get("/integrations/queue-1c/health").json()
    finally:
        for run in [*queued, running, other]:  # the instance is the session's
            dagster_instance.report_run_canceled(run)
    entities = health["entities"]
    assert (entities["stock"]["queued_runs"], entities["stock"]["running_runs"]) == (3, 0)
    assert (entities["nomenclature"]["queued_runs"], entities["nomenclature"]["running_runs"]) == (
        0,
        1,
    )

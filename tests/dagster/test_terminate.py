"""Terminate from the Dagster UI stops a forked run, with nothing half-written (#12).

Runs are forked from the preloaded run server (``defs/launcher.py``), so Dagster's default
terminate (a signal to a process it started) does not apply: the launcher marks the run
CANCELING and a thread in the run process interrupts it. Here the real webserver and daemon
run a slow full sync, the UI's ``terminateRun`` mutation stops it mid-read, and the database
shows the sync failed as interrupted with no product written.
"""

from __future__ import annotations

import time

import httpx
import pytest
from dagster import DagsterRunStatus
from sqlalchemy import func, select

from tests.dagster.processes import dagster_processes
from tradeos_pipelines.launch import request_sync
from tradeos_pipelines.storage.tables import Product, SyncLog

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TERMINATE = """mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) { __typename }
}"""


def test_terminate_in_the_ui_stops_a_forked_run_and_writes_nothing(
    instance, session, make_integration, emulator, tmp_path
) -> None:
    # 200 goods in pages of 20, each page 2 s late: the sync is mid-read for ~20 s.
    make_integration("main-1c", base_url=emulator.base_url, page_size=20, enabled=False)
    emulator.control.inject_fault("slow", count=100, path="/nomenclature", seconds=2)
    env = {"DAGSTER_GRPC_TIMEOUT_SECONDS": "300"}
    with dagster_processes(tmp_path / "dagster-logs", env) as dagster:
        [run_id] = request_sync(
            "main-1c", ["nomenclature"], full=True, source="manual", dagster_url=dagster.url
        ).run_ids
        deadline = time.monotonic() + 180
        while session.scalars(select(SyncLog.status).where(SyncLog.run_id == run_id)).first() != (
            "running"
        ):
            assert time.monotonic() < deadline, "the sync never started reading"
            time.sleep(0.5)
            session.expire_all()

        answer = httpx.post(
            f"{dagster.url}/graphql",
            json={"query": TERMINATE, "variables": {"runId": run_id}},
            timeout=60,
        ).json()
        assert answer["data"]["terminateRun"]["__typename"] == "TerminateRunSuccess"
        deadline = time.monotonic() + 120
        while instance.get_run_by_id(run_id).status not in (
            DagsterRunStatus.CANCELED,
            DagsterRunStatus.FAILURE,
            DagsterRunStatus.SUCCESS,
        ):
            assert time.monotonic() < deadline, "the run did not stop"
            time.sleep(0.5)

    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.CANCELED
    session.expire_all()
    log = session.scalars(select(SyncLog).where(SyncLog.run_id == run_id)).one()
    assert (log.status, log.error) == (
        "failed",
        "interrupted: the sync was cancelled before it committed",
    )
    # The full sync never reached its commit: not one product of the pages it had read.
    assert session.scalar(select(func.count()).select_from(Product)) == 0

"""Runs started in the Dagster UI are project runs: tagged, in their lane, in process.

The real webserver and daemon (subprocesses, the project's dagster.yaml): a "sync now" and a
UI Materialize of the same integration's products are queued together; the Materialize is
launched the way the UI does it (``launchRun`` of the implicit asset job with an asset
selection and a partition tag, nothing else). Both must succeed one after the other — one lane —
and the UI run must carry the project's tags and execute its steps in its own process.
"""

from __future__ import annotations

import time

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from tests.dagster.processes import dagster_processes, launch_run
from tradeos_pipelines.launch import request_sync

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def ui_materialize(dagster_url: str, asset_path: list[str], partition: str) -> str:
    """What the asset page's Materialize button sends: the implicit asset job, no tags of ours."""
    return launch_run(dagster_url, "__ASSET_JOB", {"dagster/partition": partition}, asset_path)


def wait_finished(instance: DagsterInstance, run_ids: list[str], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    for run_id in run_ids:
        while instance.get_run_by_id(run_id).status not in FINISHED:
            assert time.monotonic() < deadline, f"run {run_id} did not finish in {timeout} s"
            time.sleep(1)


def test_a_ui_materialize_is_tagged_waits_for_its_lane_and_runs_in_process(
    instance, make_integration, emulator, tmp_path
) -> None:
    # Disabled: the change sensor and schedules leave it alone; runs started by hand still sync.
    make_integration("main-1c", base_url=emulator.base_url, enabled=False)
    env = {
        "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
        "DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS": "180",
        "DAGSTER_SCHEDULE_GRPC_TIMEOUT_SECONDS": "180",
    }
    with dagster_processes(tmp_path / "dagster-logs", env) as dagster:
        manual = request_sync(
            "main-1c", ["nomenclature"], full=True, source="manual", dagster_url=dagster.url
        ).run_ids[0]
        ui = ui_materialize(dagster.url, ["tradeos", "products"], "main-1c")
        wait_finished(instance, [manual, ui])

    manual_run, ui_run = instance.get_run_by_id(manual), instance.get_run_by_id(ui)
    assert (manual_run.status, ui_run.status) == (
        DagsterRunStatus.SUCCESS,
        DagsterRunStatus.SUCCESS,
    )
    assert ui_run.job_name == "__ASSET_JOB"
    # Started as a fork of the preloaded run server (the launcher records the process id).
    assert ui_run.tags.pop("tradeos/run_pid").isdigit() is True
    assert {k: v for k, v in ui_run.tags.items() if k.startswith("tradeos/")} == {
        "tradeos/integration": "main-1c",
        "tradeos/entity": "nomenclature",
        "tradeos/lane": "main-1c:nomenclature",
        "tradeos/lane/nomenclature": "main-1c",
        "tradeos/full": "false",
        "tradeos/source": "manual",
    }
    assert ui_run.tags["dagster/priority"] == "10"

    # One lane: the second run started only after the first had finished.
    first, second = sorted(
        (instance.get_run_record_by_id(r) for r in (manual, ui)), key=lambda r: r.start_time
    )
    assert second.start_time >= first.end_time

    # The implicit asset job runs its step and its checks in the run process.
    messages = [e.message for e in instance.all_logs(ui) if e.message]
    assert sum("Executing steps in process" in m for m in messages) == 1
    assert sum("multiprocess executor" in m for m in messages) == 0

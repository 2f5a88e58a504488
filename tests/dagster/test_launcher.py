"""The preloaded run launcher: which runs it forks, and terminate without a signal.

Launching itself is exercised with the real daemon in ``test_ui_runs.py`` and ``test_e2e.py``
(every run there is forked: the ``tradeos/run_pid`` tag).
"""

from __future__ import annotations

import sys

from dagster import DagsterRunStatus
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.test_utils import create_run_for_test

from tradeos_pipelines.defs.launcher import PID_TAG, PreloadedRunLauncher


def origin(module: str) -> JobPythonOrigin:
    pointer = ModuleCodePointer(module, "defs", None)
    return JobPythonOrigin(
        "nomenclature_sync", RepositoryPythonOrigin(sys.executable, pointer, None, None, None)
    )


def test_the_instance_forks_runs_of_the_preloaded_location_only(instance) -> None:
    launcher = instance.run_launcher
    assert isinstance(launcher, PreloadedRunLauncher)
    ours = create_run_for_test(
        instance,
        job_name="nomenclature_sync",
        job_code_origin=origin("tradeos_pipelines.definitions"),
    )
    other = create_run_for_test(
        instance, job_name="noop_job", job_code_origin=origin("bench.dagster_trivial")
    )
    assert (launcher.serves(ours), launcher.serves(other)) == (True, False)


def test_terminate_marks_a_forked_run_canceling_for_its_process_to_see(instance) -> None:
    run = create_run_for_test(
        instance,
        job_name="nomenclature_sync",
        status=DagsterRunStatus.STARTED,
        tags={PID_TAG: "4242"},
        job_code_origin=origin("tradeos_pipelines.definitions"),
    )

    assert instance.run_launcher.terminate(run.run_id) is True
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELING
    # A finished run is not terminated again.
    done = create_run_for_test(
        instance, job_name="nomenclature_sync", status=DagsterRunStatus.SUCCESS, tags={PID_TAG: "1"}
    )
    assert instance.run_launcher.terminate(done.run_id) is False

"""The process runs are forked from (see :mod:`tradeos_pipelines.defs.launcher`).

Imported once by the forkserver, before the code location: it imports the classes the Dagster
instance is built from (``$DAGSTER_HOME/dagster.yaml``: PostgreSQL storage, Alembic for its
schema check, the compute log manager, ...) without connecting to anything, so a forked run
opens the instance in a fraction of a second instead of importing ~340 modules first
(measured: 12.8 s → 0.9 s on the loaded two-core machine). Nothing here may open a connection
or start a thread: every run process inherits this process's memory.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from typing import Any

from dagster._core.storage.dagster_run import DagsterRunStatus

# How often a run process checks whether someone asked to terminate it.
CANCEL_POLL_SECONDS = 1.0


def preload_instance_modules(dagster_home: str | None) -> list[str]:
    """Import the instance's configured classes and what opening it loads; their modules."""
    from dagster._core.instance.ref import InstanceRef

    loaded = ["alembic.runtime.migration", "alembic.script", "upath", "fsspec"]
    for name in loaded:
        importlib.import_module(name)
    if not dagster_home:
        return loaded
    ref = InstanceRef.from_dir(dagster_home)
    for field in InstanceRef._fields:
        data = getattr(ref, field)
        if hasattr(data, "module_name") and hasattr(data, "class_name"):
            getattr(importlib.import_module(data.module_name), data.class_name)
            loaded.append(data.module_name)
    return loaded


def _watch_for_cancel(instance: Any, run_id: str, done: threading.Event) -> None:
    """Interrupt the run's main thread once the run is marked CANCELING (terminate)."""
    from dagster._utils import send_interrupt

    while not done.wait(CANCEL_POLL_SECONDS):
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status == DagsterRunStatus.CANCELING:
            send_interrupt()
            return


def execute_run_in_fork(serialized_instance_ref: str, run_id: str) -> None:
    """The run process: what ``dagster api execute_run`` does, in a fork of the warm server."""
    from dagster._core.events import EngineEventData
    from dagster._core.instance import DagsterInstance, InstanceRef
    from dagster._grpc.impl import core_execute_run
    from dagster._serdes import deserialize_value
    from dagster._utils.hosted_user_process import recon_job_from_origin
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts():
        ref = deserialize_value(serialized_instance_ref, InstanceRef)
        with DagsterInstance.from_ref(ref) as instance:
            run = instance.get_run_by_id(run_id)
            if run is None:
                raise RuntimeError(f"run {run_id} is not in the instance's run storage")
            pid = os.getpid()
            instance.report_engine_event(
                f"Started process for run (pid: {pid}), forked from the preloaded run server.",
                run,
                EngineEventData.in_process(pid),
            )
            done = threading.Event()
            threading.Thread(
                target=_watch_for_cancel, args=(instance, run_id, done), daemon=True
            ).start()
            try:
                recon_job = recon_job_from_origin(run.job_code_origin)  # type: ignore[arg-type]
                for _event in core_execute_run(recon_job, run, instance, inject_env_vars=False):
                    pass
            except BaseException:
                # core_execute_run has reported the failure or interruption on the run.
                pass
            finally:
                done.set()
                instance.report_engine_event(f"Process for run exited (pid: {pid}).", run)


# The forkserver imports this module and dies on any error but ImportError: a bad dagster.yaml
# must only cost the preloading (the run process then opens the instance the slow way).
try:
    preload_instance_modules(os.environ.get("DAGSTER_HOME"))
except Exception as exc:
    logging.getLogger(__name__).warning("run server: instance modules not preloaded: %s", exc)

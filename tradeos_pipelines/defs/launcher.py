"""Start run processes without paying Python's start-up again: fork them from a warm server.

Dagster's default launcher asks the code server to *spawn* a new interpreter per run; that
interpreter imports Dagster (with SQLAlchemy, gRPC, pydantic) and then this code location
before the first event: 3-5 CPU-seconds per run on the reference two cores, and the daemon's
launch call waits for the first part of it. bench/bench_e2e_dagster.py measured it as the
largest share of "sync now".

:class:`PreloadedRunLauncher` keeps one ``multiprocessing`` *forkserver* — a single-threaded
process that has imported ``preload_modules`` once — and starts each run as a fork of it: the
run process begins with Dagster and the code location already in memory (shared copy-on-write),
opens the instance and executes the run exactly as Dagster's own run worker does
(``core_execute_run``). The run is still an ordinary Dagster run: same events, logs, tags,
partition, re-execution; only the process that hosts it starts sooner.

Limits and what they mean for a deployment:

* The run executes on the daemon's host with the daemon's environment, as runs of a
  ``python_module`` workspace already do (their code server is the daemon's child). Runs of a
  code location not in ``preload_modules`` go through :class:`DefaultRunLauncher` unchanged.
* The forkserver holds the code as it was when it started; when a ``.py`` file of a preloaded
  package changes it is restarted before the next launch, so edits apply like a reload.
* Terminate (UI or API, from any process) marks the run CANCELING; a thread in the run process
  polls that and interrupts the run, so it needs no signal across hosts or containers.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from dagster import Array, Field
from dagster._core.launcher import DefaultRunLauncher, LaunchRunContext
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClassData

# The run process's pid and parent, for people and for terminate().
PID_TAG = "tradeos/run_pid"
# Imported first by the forkserver: the run process's entry point and the modules opening the
# Dagster instance loads.
RUN_SERVER_MODULE = "tradeos_pipelines.defs.run_server"


def _package_files(modules: Sequence[str]) -> dict[str, float]:
    """Modification times of the ``.py`` files of the preloaded modules' top-level packages."""
    stamps: dict[str, float] = {}
    for top in sorted({m.split(".")[0] for m in modules}):
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            for path in Path(root).rglob("*.py"):
                stamps[str(path)] = path.stat().st_mtime
    return stamps


class PreloadedRunLauncher(DefaultRunLauncher):
    """Launch runs of the preloaded code locations as forks of a warm forkserver.

    Config (dagster.yaml ``run_launcher.config``): ``preload_modules``, the Python modules of
    the code locations to serve this way (``tradeos_pipelines.definitions``).
    """

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        preload_modules: Sequence[str] | None = None,
    ) -> None:
        super().__init__(inst_data=inst_data)
        self._preload = list(preload_modules or [])
        self._lock = threading.Lock()
        self._context: Any = None
        self._stamps: dict[str, float] = {}

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "preload_modules": Field(
                Array(str),
                is_required=False,
                default_value=[],
                description="Modules of the code locations whose runs start as forks.",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        return cls(inst_data=inst_data, preload_modules=config_value.get("preload_modules"))

    def serves(self, run: DagsterRun) -> bool:
        """Whether ``run``'s code location is one this launcher forks (its module preloaded)."""
        origin = run.job_code_origin
        if origin is None:
            return False
        module = getattr(origin.repository_origin.code_pointer, "module", None)
        return module in self._preload

    def _forkserver(self) -> Any:
        """The multiprocessing context, its server (re)started when the code changed."""
        with self._lock:
            stamps = _package_files(self._preload)
            if self._context is not None and stamps != self._stamps:
                from multiprocessing import forkserver

                forkserver._forkserver._stop()  # type: ignore[attr-defined]
                self._context = None
            if self._context is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([RUN_SERVER_MODULE, *self._preload])
                self._context = context
                self._stamps = stamps
            return self._context

    def register_instance(self, instance: Any) -> None:
        super().register_instance(instance)
        # Only the daemon launches runs; the webserver builds the launcher too (for terminate)
        # and should not hold a forkserver with the code location in memory.
        if Path(sys.argv[0]).name == "dagster-daemon":
            threading.Thread(target=self.warm_up, name="warm-run-server", daemon=True).start()

    def warm_up(self) -> None:
        """Start the forkserver now (it imports the preloaded modules) instead of at a launch."""
        from multiprocessing import forkserver

        self._forkserver()
        forkserver.ensure_running()

    def launch_run(self, context: LaunchRunContext) -> None:
        """Fork the run process and return: its events show in the run's log from then on."""
        from dagster._serdes import serialize_value

        run = context.dagster_run
        if not self.serves(run):
            super().launch_run(context)
            return
        multiprocessing.active_children()  # collect finished run processes
        from tradeos_pipelines.defs.run_server import execute_run_in_fork

        process = self._forkserver().Process(
            target=execute_run_in_fork,
            args=(serialize_value(self._instance.get_ref()), run.run_id),
            name=f"dagster-run-{run.run_id[:8]}",
            daemon=False,
        )
        try:
            process.start()
        except OSError as exc:
            # The forkserver could not start or died (e.g. the code location fails to import):
            # launch as Dagster does, which reports the load error on the run.
            self._instance.report_engine_event(
                f"Preloaded run server unavailable ({exc}); starting the run process as usual.",
                run,
                cls=self.__class__,
            )
            super().launch_run(context)
            return
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(process.pid)})
        self._run_ids.add(run.run_id)

    def terminate(self, run_id: str) -> bool:
        """Ask a forked run to stop (it polls for CANCELING); other runs as Dagster does."""
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        if PID_TAG not in run.tags:
            return super().terminate(run_id)
        self._instance.report_run_canceling(run)
        return True

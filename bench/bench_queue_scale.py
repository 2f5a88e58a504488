"""The run queue at scale: 50 integrations whose schedules fire in the same minute.

Starts a fresh stack (PostgreSQL databases, the 1C emulator, ``dagster-webserver`` and
``dagster-daemon`` with the project's dagster.yaml), creates ``--integrations`` integrations
and submits, as their schedules would, one nomenclature and one orders run each (priority
"schedule"). While those wait, ``--manual`` "sync now" runs (priority "manual") are submitted
for the nomenclature lanes of the last integrations. Then it waits for the queue to drain and
reports:

* drain time (first submit → last run finished) and runs per minute;
* lanes: no two runs of one lane (``tradeos/lane``) ever overlapped;
* whether the manual runs started before the scheduled runs submitted ahead of them;
* peak memory of the daemon's process tree (daemon, code server, forkserver and run processes;
  RSS counts pages shared by the forked runs once per process, USS only once).

    .venv/bin/python bench/bench_queue_scale.py [--integrations 50] [--manual 5]

Results: bench/results/queue_scale.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_e2e_dagster import BENCH_KEY, dagster_bench_stack, wait_idle  # noqa: E402

RESULTS = ROOT / "bench" / "results"


class TreeMemory:
    """Samples the summed RSS and USS of a process and all its descendants every second."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self.peak_rss_mb = 0.0
        self.peak_uss_mb = 0.0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(1.0):
            rss = uss = 0
            procs = [self._root, *self._root.children(recursive=True)]
            for proc in procs:
                try:
                    info = proc.memory_full_info()
                except psutil.Error:
                    continue
                rss += info.rss
                uss += info.uss
            self.peak_rss_mb = max(self.peak_rss_mb, rss / 2**20)
            self.peak_uss_mb = max(self.peak_uss_mb, uss / 2**20)
            self.peak_processes = max(self.peak_processes, len(procs))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integrations", type=int, default=50)
    parser.add_argument("--manual", type=int, default=5)
    args = parser.parse_args()

    from dagster import DagsterInstance

    from tests.dagster.processes import dagster_processes, launch_run
    from tradeos_pipelines.core.settings import today_in_schedule_timezone
    from tradeos_pipelines.core.vocabulary import (
        INTEGRATION_PARTITIONS,
        JOB_FOR_ENTITY,
        TAG_LANE,
        partition_tags,
        run_tags,
    )
    from tradeos_pipelines.emulators.http_service import EmulatorServer

    ids = [f"shop-{i:02d}" for i in range(args.integrations)]
    results: dict[str, Any] = {"integrations": args.integrations, "manual": args.manual}
    with (
        dagster_bench_stack("scale") as stack,
        EmulatorServer(items=200, api_key=BENCH_KEY) as emulator,
    ):
        home = stack.home
        # Disabled: the sensors and schedules leave them to the bench.
        stack.add_integrations(ids, emulator.base_url, enabled=False)
        instance = DagsterInstance.from_config(str(home))
        instance.add_dynamic_partitions(INTEGRATION_PARTITIONS, ids)
        day: date = today_in_schedule_timezone()
        with dagster_processes(home / "logs") as dagster:
            wait_idle(instance)
            memory = TreeMemory(dagster.daemon.pid)
            started = time.time()
            scheduled: list[str] = []
            for integration_id in ids:
                for entity in ("nomenclature", "orders"):
                    tags = {
                        **run_tags(integration_id, entity, full=False, source="schedule"),
                        **partition_tags(integration_id, entity, day),
                    }
                    scheduled.append(launch_run(dagster.url, JOB_FOR_ENTITY[entity], tags))
            submitted_scheduled = time.time()
            manual: list[str] = []
            for integration_id in ids[-args.manual :]:
                tags = {
                    **run_tags(integration_id, "nomenclature", full=False, source="manual"),
                    **partition_tags(integration_id, "nomenclature", day),
                }
                manual.append(launch_run(dagster.url, JOB_FOR_ENTITY["nomenclature"], tags))
            wait_idle(instance, timeout=3600)
            memory.stop()
        records = {
            run_id: instance.get_run_record_by_id(run_id) for run_id in [*scheduled, *manual]
        }
        instance.dispose()

    ends = [r.end_time for r in records.values() if r.end_time]
    drain_s = max(ends) - started
    statuses: dict[str, int] = {}
    for r in records.values():
        statuses[r.dagster_run.status.value] = statuses.get(r.dagster_run.status.value, 0) + 1
    # Lanes: sort each lane's runs by start; each must start after the previous one ended.
    lanes: dict[str, list[Any]] = {}
    for r in records.values():
        lanes.setdefault(r.dagster_run.tags[TAG_LANE], []).append(r)
    overlaps = 0
    for runs in lanes.values():
        runs.sort(key=lambda r: r.start_time or 0)
        for before, after in itertools.pairwise(runs):
            if after.start_time is not None and before.end_time is not None:
                overlaps += after.start_time < before.end_time
    # Priority: how many scheduled runs (all submitted before the manual ones) started after
    # each manual run started.
    scheduled_starts = [records[r].start_time for r in scheduled if records[r].start_time]
    overtaken = [
        sum(s > records[m].start_time for s in scheduled_starts)
        for m in manual
        if records[m].start_time
    ]
    durations = [r.end_time - r.start_time for r in records.values() if r.end_time and r.start_time]
    results.update(
        {
            "runs": len(records),
            "statuses": statuses,
            "drain_s": round(drain_s, 1),
            "submit_s": round(submitted_scheduled - started, 1),
            "runs_per_minute": round(len(records) / drain_s * 60, 1),
            "run_duration_p50_s": round(statistics.median(durations), 2),
            "lane_overlaps": overlaps,
            "scheduled_runs_started_after_each_manual_run": overtaken,
            "peak_tree_rss_mb": round(memory.peak_rss_mb),
            "peak_tree_uss_mb": round(memory.peak_uss_mb),
            "peak_processes": memory.peak_processes,
            "load_average_1m_at_end": round(os.getloadavg()[0], 1),
        }
    )
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "queue_scale.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

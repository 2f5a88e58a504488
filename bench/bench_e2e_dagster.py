"""End-to-end "sync now" through Dagster, second by second.

Starts a fresh stack: PostgreSQL databases (TradeOS + Dagster storage), the 1C emulator with
``--items`` catalogue rows, ``dagster-webserver``, ``dagster-daemon`` and the sidecar (REST +
WebSocket, its run watcher reading the Dagster instance). One full sync loads the catalogue
first (not measured). Then, ``--repeat`` times each:

* ``one``: 100 goods change in 1C, ``POST /api/v1/integrations/<id>/sync`` for nomenclature;
* ``three``: 100 goods and 100 stock rows change, one POST for nomenclature + stock + orders;
* ``ui``: 100 goods change, a Materialize of the products partition as the Dagster UI sends it
  (``launchRun`` of the implicit asset job; ``api`` is then the GraphQL call);
* ``tick``, ``tick3``: as ``one`` and ``three``, but a schedule tick of
  ``--tick-integrations`` other integrations (a nomenclature and an orders run each, priority
  "schedule", on a small emulator of their own) is submitted just before the POST and is in
  flight while "sync now" waits;

and each run's time is split at the events Dagster and the engine record:

=====================  =====================================================================
api                    POST sent → run created in Dagster (GraphQL launchRun, 202 answered)
queued→dequeued        RUN_ENQUEUED → RUN_STARTING (daemon tick, waiting for other launches)
dequeued→worker up     RUN_STARTING → "Started process for run": the code server spawns a
                       Python process that imports dagster and opens the instance; the daemon's
                       launch call returns at this moment, so this is also "launched"
imports+plan           → RUN_START: the worker imports the code location, builds the plan
resource init          RUN_START → first STEP_START (executor, resources, step context)
engine                 first STEP_START → ``sync_logs.finished_at`` (the data is committed)
commit→ws sync.finished  ``sync_logs.finished_at`` → the ``sync.finished`` frame arrives
success→ws run.succeeded RUN_SUCCESS → the ``run.succeeded`` frame arrives
=====================  =====================================================================

``committed`` is POST → data committed (the issue's goal: p50 ≤ 3 s for one entity, ≤ 5 s for
all three of one request); ``success`` is POST → RUN_SUCCESS.

    .venv/bin/python bench/bench_e2e_dagster.py [--items 20000] [--repeat 5] [--label after]

Servers: TRADEOS_TEST_POSTGRES_URL and TRADEOS_TEST_REDIS_URL (defaults: local servers).
Results: bench/results/e2e_dagster_<label>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._integrations import add_integrations  # noqa: E402
from bench._sidecar import sidecar_process  # noqa: E402
from tradeos_pipelines.core.secrets import new_secret_key  # noqa: E402
from tradeos_pipelines.core.settings import get_settings, normalize_database_url  # noqa: E402

RESULTS = ROOT / "bench" / "results"
FAR_AWAY_CRON = "0 0 1 1 *"  # schedules must not start runs during the measurement
INTEGRATION = "bench-1c"
CHANGED = 100
PHASES = (
    "api",
    "queued_to_dequeued",
    "dequeued_to_worker_up",
    "imports_plan",
    "resource_init",
    "engine",
    "commit_to_ws",
    "success_to_ws",
)
TOTALS = ("committed", "success")


def create_database(admin_url: str, name: str) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# The API key of the benches' HTTP-service emulators and of the integrations on them.
BENCH_KEY = "bench-key"


@dataclass
class BenchStack:
    """Where a Dagster bench runs: its own TradeOS database (migrated), Dagster storage,
    ``DAGSTER_HOME`` and Redis namespace, exported as the environment the processes read."""

    database_url: str
    home: Path
    token: str

    def add_integrations(self, ids: list[str], base_url: str, *, enabled: bool = True) -> None:
        """HTTP-service integrations on an emulator started with :data:`BENCH_KEY`;
        ``enabled=False`` leaves their runs to the bench (no sensor or schedule starts any)."""
        add_integrations(
            ids, base_url, {"api_key": BENCH_KEY}, database_url=self.database_url, enabled=enabled
        )


@contextmanager
def dagster_bench_stack(name: str) -> Iterator[BenchStack]:
    """A throwaway stack for a bench named ``name``; schedules never fire and the change
    sensor ticks hourly, so every run is one the bench asked for. Dropped on exit."""
    admin_url = normalize_database_url(
        os.environ.get("TRADEOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    tag = f"{os.getpid()}_{secrets.token_hex(3)}"
    tradeos_db, dagster_db = f"tradeos_{name}_{tag}", f"dagster_{name}_{tag}"
    home = Path(tempfile.mkdtemp(prefix=f"bench_{name}_"))
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    database_url = create_database(admin_url, tradeos_db)
    dagster_url = create_database(admin_url, dagster_db)
    token = "bench-" + secrets.token_hex(16)
    os.environ.update(
        {
            "TRADEOS_DATABASE_URL": database_url,
            "TRADEOS_REDIS_URL": os.environ.get(
                "TRADEOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"
            ),
            "TRADEOS_REDIS_NAMESPACE": f"tradeos-{name}-{tag}",
            "TRADEOS_SECRET_KEY": new_secret_key(),
            "TRADEOS_ADMIN_TOKEN": token,
            "TRADEOS_NOMENCLATURE_SCHEDULE_CRON": FAR_AWAY_CRON,
            "TRADEOS_STOCK_ORDERS_SCHEDULE_CRON": FAR_AWAY_CRON,
            # The change sensor would sync the emulator's changes by itself: tick rarely.
            "TRADEOS_CHANGE_SENSOR_INTERVAL_SECONDS": "3600",
            "DAGSTER_HOME": str(home),
            "TRADEOS_DAGSTER_DATABASE_URL": dagster_url,
            # Dagster's default 60 s for a launch call fails runs on a loaded machine (the
            # daemon waits for the run process to start); the e2e tests allow the same.
            "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
        }
    )
    get_settings.cache_clear()
    from tradeos_pipelines.storage.migrate import upgrade_to_head

    try:
        upgrade_to_head(database_url)
        yield BenchStack(database_url, home, token)
    finally:
        drop_database(admin_url, tradeos_db)
        drop_database(admin_url, dagster_db)
        shutil.rmtree(home, ignore_errors=True)


class FrameLog:
    """Every WebSocket frame of ``sync_updates`` and ``runs`` with the time it arrived."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(ws_url, open_timeout=30)
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for message in self._ws:
                arrived = time.time()
                frame = json.loads(message)
                with self._lock:
                    self.frames.append((arrived, frame))
        except ConnectionClosed:
            return

    def first(self, event_type: str, run_id: str) -> float | None:
        with self._lock:
            for arrived, frame in self.frames:
                data = frame.get("data") or {}
                if frame.get("type") == event_type and data.get("run_id") == run_id:
                    return arrived
        return None

    def count(self, event_type: str, run_id: str) -> int:
        with self._lock:
            return sum(
                1
                for _, frame in self.frames
                if frame.get("type") == event_type
                and (frame.get("data") or {}).get("run_id") == run_id
            )

    def last(self, event_type: str, run_id: str) -> float | None:
        with self._lock:
            for arrived, frame in reversed(self.frames):
                data = frame.get("data") or {}
                if frame.get("type") == event_type and data.get("run_id") == run_id:
                    return arrived
        return None

    def close(self) -> None:
        self._ws.close()


def ui_materialize(dagster_url: str, asset_path: list[str]) -> str:
    """What the Dagster UI's Materialize button sends: the implicit asset job, a partition."""
    from tests.dagster.processes import launch_run

    return launch_run(dagster_url, "__ASSET_JOB", {"dagster/partition": INTEGRATION}, asset_path)


def submit_tick(dagster_url: str, integration_ids: list[str]) -> list[str]:
    """One schedule tick: a nomenclature and an orders run per integration, priority
    "schedule", as the hourly and 15-minute schedules submit them."""
    from tests.dagster.processes import launch_run
    from tradeos_pipelines.core.settings import today_in_schedule_timezone
    from tradeos_pipelines.core.vocabulary import JOB_FOR_ENTITY, partition_tags, run_tags

    day = today_in_schedule_timezone()
    run_ids = []
    for integration_id in integration_ids:
        for entity in ("nomenclature", "orders"):
            tags = {
                **run_tags(integration_id, entity, full=False, source="schedule"),
                **partition_tags(integration_id, entity, day),
            }
            run_ids.append(launch_run(dagster_url, JOB_FOR_ENTITY[entity], tags))
    return run_ids


def wait_idle(instance, timeout: float = 600) -> None:  # noqa: ANN001
    """Until no run is queued, starting or started (earlier runs must not skew the next)."""
    from dagster import DagsterRunStatus, RunsFilter

    busy = [DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    deadline = time.monotonic() + timeout
    while instance.get_runs_count(RunsFilter(statuses=busy)):
        if time.monotonic() > deadline:
            raise TimeoutError("runs still in flight")
        time.sleep(0.5)


def wait_finished(instance, run_ids: list[str], timeout: float = 600) -> None:  # noqa: ANN001
    from dagster import DagsterRunStatus

    done = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout
    for run_id in run_ids:
        while instance.get_run_by_id(run_id).status not in done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} did not finish in {timeout} s")
            time.sleep(0.2)


def event_times(instance, run_id: str) -> dict[str, float]:  # noqa: ANN001
    """First timestamp of each milestone in the run's event log."""
    times: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        name = event.event_type_value
        message = event.message or entry.user_message or ""
        if name == "ENGINE_EVENT" and "Started process for run" in message:
            name = "WORKER_UP"
        if name == "PIPELINE_FAILURE":
            print(f"run {run_id} failed: {message}")
        times.setdefault(name, entry.timestamp)
    return times


def breakdown(
    instance,  # noqa: ANN001
    frames: FrameLog,
    database_url: str,
    run_id: str,
    posted: float,
) -> dict[str, Any]:
    """One run's phases in seconds (None where a milestone is missing)."""
    from tradeos_pipelines.storage.database import session_scope
    from tradeos_pipelines.storage.tables import SyncLog

    record = instance.get_run_record_by_id(run_id)
    ev = event_times(instance, run_id)
    # The orders run logs its export and its status read; its data is in once both are.
    with session_scope(database_url) as session:
        logs = session.query(SyncLog).filter_by(run_id=run_id).all()
        committed = max(log.finished_at.timestamp() for log in logs) if logs else None
        engine_s = sum((log.finished_at - log.started_at).total_seconds() for log in logs)
    # An orders run finishes two syncs (export, statuses): its data is in at the last one.
    deadline = time.monotonic() + 10
    while (
        frames.first("run.succeeded", run_id) is None
        or frames.count("sync.finished", run_id) < len(logs)
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    ws_finished = [frames.last("sync.finished", run_id)]
    ws_success = frames.first("run.succeeded", run_id)

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(b - a, 3)

    first_step = ev.get("STEP_START")
    return {
        "run_id": run_id,
        "job": record.dagster_run.job_name,
        "status": record.dagster_run.status.value,
        "api": span(posted, record.create_timestamp.timestamp()),
        "queued_to_dequeued": span(ev.get("PIPELINE_ENQUEUED"), ev.get("PIPELINE_STARTING")),
        "dequeued_to_worker_up": span(ev.get("PIPELINE_STARTING"), ev.get("WORKER_UP")),
        "imports_plan": span(ev.get("WORKER_UP"), ev.get("PIPELINE_START")),
        "resource_init": span(ev.get("PIPELINE_START"), first_step),
        "engine": span(first_step, committed),
        "engine_own": round(engine_s, 3),
        "commit_to_ws": span(committed, ws_finished[0]),
        "success_to_ws": span(ev.get("PIPELINE_SUCCESS"), ws_success),
        "committed": span(posted, committed),
        "success": span(posted, ev.get("PIPELINE_SUCCESS")),
        "events": {k: round(v - posted, 3) for k, v in sorted(ev.items(), key=lambda kv: kv[1])},
    }


def import_costs(env: dict[str, str], repeat: int = 3) -> dict[str, float]:
    """Median seconds for a fresh interpreter to start, import dagster, import the location."""
    script = (
        "import time, sys; t0 = time.perf_counter(); import dagster; t1 = time.perf_counter();"
        "import tradeos_pipelines.definitions; t2 = time.perf_counter();"
        "print(t1 - t0, t2 - t1)"
    )
    bare, dag, loc = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
        bare.append(time.perf_counter() - started)
        out = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", script],
            check=True,
            env=env,
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.split()
        dag.append(float(out[0]))
        loc.append(float(out[1]))
    return {
        "python_start_s": round(statistics.median(bare), 3),
        "import_dagster_s": round(statistics.median(dag), 3),
        "import_code_location_s": round(statistics.median(loc), 3),
    }


def max_or_none(values: Iterator[float | None]) -> float | None:
    """The largest value, or None when any is missing (a run did not get that far)."""
    seen = list(values)
    return None if None in seen else max(v for v in seen if v is not None)


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    summary: dict[str, dict[str, float | None]] = {}
    for key in (*PHASES, "engine_own", *TOTALS):
        values = [float(r[key]) for r in rows if r.get(key) is not None]
        summary[key] = {
            "p50": round(statistics.median(values), 3) if values else None,
            "max": round(max(values), 3) if values else None,
        }
    return summary


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    cols = ("job", *PHASES, "engine_own", *TOTALS)
    print("  ".join(f"{c[:14]:>14}" for c in cols))
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append(f"{v:>14.2f}" if isinstance(v, float) else f"{v!s:>14}")
        print("  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--label", default="current")
    parser.add_argument(
        "--scenarios",
        default="one,three,ui,tick,tick3",
        help="comma-separated: one, three, ui, tick, tick3",
    )
    parser.add_argument(
        "--tick-integrations", type=int, default=5, help="integrations in the schedule tick"
    )
    args = parser.parse_args()

    from dagster import DagsterInstance

    from tests.dagster.processes import dagster_processes
    from tradeos_pipelines.core.vocabulary import INTEGRATION_PARTITIONS
    from tradeos_pipelines.emulators.http_service import EmulatorServer
    from tradeos_pipelines.launch import request_sync

    results: dict[str, Any] = {"items": args.items, "label": args.label}
    with (
        dagster_bench_stack("bench") as stack,
        EmulatorServer(items=args.items, api_key=BENCH_KEY) as emulator,
        EmulatorServer(items=200, api_key=BENCH_KEY) as tick_emulator,
    ):
        database_url, home, token = stack.database_url, stack.home, stack.token
        stack.add_integrations([INTEGRATION], emulator.base_url)
        tick_ids = [f"tick-{i:02d}" for i in range(args.tick_integrations)]
        # Only the bench's tick starts their runs.
        stack.add_integrations(tick_ids, tick_emulator.base_url, enabled=False)
        results["imports"] = import_costs(dict(os.environ))
        instance = DagsterInstance.from_config(str(home))
        instance.add_dynamic_partitions(INTEGRATION_PARTITIONS, tick_ids)
        with dagster_processes(home / "logs") as dagster:
            os.environ["TRADEOS_DAGSTER_URL"] = dagster.url
            get_settings.cache_clear()
            # Load the catalogue once: the measured syncs read only what changed.
            wait_idle(instance)
            warm = request_sync(INTEGRATION, ["nomenclature", "stock"], full=True, source="manual")
            wait_finished(instance, warm.run_ids)
            with sidecar_process(dict(os.environ)) as (api_url, ws_url, _):
                frames = FrameLog(f"{ws_url}?token={token}&channels=sync_updates,runs")
                http = httpx.Client(
                    base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
                )
                wanted = args.scenarios.split(",")
                for scenario, entities in (
                    ("one", ["nomenclature"]),
                    ("three", ["nomenclature", "stock", "orders"]),
                    ("ui", ["nomenclature"]),
                    ("tick", ["nomenclature"]),
                    ("tick3", ["nomenclature", "stock", "orders"]),
                ):
                    if scenario not in wanted:
                        continue
                    rows: list[dict[str, Any]] = []
                    for _ in range(args.repeat):
                        wait_idle(instance)
                        time.sleep(2)  # let the daemon settle into its idle loop
                        emulator.control.change_items(CHANGED)
                        emulator.control.change_stock(CHANGED)
                        in_flight = (
                            submit_tick(dagster.url, tick_ids)
                            if scenario.startswith("tick")
                            else []
                        )
                        posted = time.time()
                        if scenario == "ui":
                            run_ids = [ui_materialize(dagster.url, ["tradeos", "products"])]
                        else:
                            response = http.post(
                                f"/api/v1/integrations/{INTEGRATION}/sync",
                                json={"entities": entities, "full": False},
                            )
                            response.raise_for_status()
                            run_ids = response.json()["run_ids"]
                        wait_finished(instance, run_ids + in_flight)
                        per_run = [
                            breakdown(instance, frames, database_url, run_id, posted)
                            for run_id in run_ids
                        ]
                        rows.extend(per_run)
                        if len(entities) > 1:
                            rows.append(
                                {
                                    "job": "ALL THREE",
                                    "committed": max_or_none(r["committed"] for r in per_run),
                                    "success": max_or_none(r["success"] for r in per_run),
                                }
                            )
                    print_table(f"{scenario}: {entities}", rows)
                    if os.environ.get("BENCH_EVENTS"):
                        for r in rows:
                            print(r.get("job"), r.get("events"))
                    per_job = {
                        job: summarize([r for r in rows if r["job"] == job])
                        for job in dict.fromkeys(r["job"] for r in rows)
                    }
                    results[scenario] = {"summary": per_job, "runs": rows}
                frames.close()
                http.close()
        instance.dispose()

    print("\nimports (fresh interpreter, median):", json.dumps(results["imports"]))
    for scenario in [name for name in ("one", "three", "ui", "tick", "tick3") if name in results]:
        for job, summary in results[scenario]["summary"].items():
            cells = ", ".join(f"{k} {v['p50']}" for k, v in summary.items() if v["p50"] is not None)
            print(f"{scenario} {job} p50: {cells}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"e2e_dagster_{args.label}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()

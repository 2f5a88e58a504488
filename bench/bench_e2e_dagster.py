"""End-to-end "sync now" through Dagster: GraphQL submit → queued → started → data committed.

Starts a fresh PostgreSQL database (TradeOS + Dagster storage), the 1C emulator with
``--items`` catalogue rows, ``dagster-webserver`` and ``dagster-daemon``, then launches full
nomenclature syncs with :func:`tradeos_pipelines.launch.request_sync` and a do-nothing asset run
for comparison. Reports, per run: total time (submit → run success), Dagster's share before the
run starts (submit → run start: GraphQL, queue, daemon dequeue, run worker start-up) and the
engine's time (``sync_logs`` started_at → finished_at).

    .venv/bin/python bench/bench_e2e_dagster.py [--items 10000] [--repeat 3]

Servers: TRADEOS_TEST_POSTGRES_URL and TRADEOS_TEST_REDIS_URL (defaults: local servers).
Results: bench/results/e2e_dagster.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tradeos_pipelines.core.secrets import new_secret_key  # noqa: E402
from tradeos_pipelines.core.settings import get_settings, normalize_database_url  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "e2e_dagster.json"
FAR_AWAY_CRON = "0 0 1 1 *"  # schedules must not start runs during the measurement


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


def wait_finished(instance, run_id: str, timeout: float = 600):  # noqa: ANN001, ANN201
    from dagster import DagsterRunStatus

    done = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = instance.get_run_record_by_id(run_id)
        if record is not None and record.dagster_run.status in done:
            return record
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} did not finish in {timeout} s")


def launch_noop(url: str) -> str:
    from tradeos_pipelines.launch import LAUNCH_RUN, REPOSITORY_NAME

    params = {
        "selector": {
            "repositoryLocationName": "bench_trivial",
            "repositoryName": REPOSITORY_NAME,
            "jobName": "noop_job",
        }
    }
    body = httpx.post(
        f"{url}/graphql",
        json={"query": LAUNCH_RUN, "variables": {"executionParams": params}},
        timeout=60,
    ).json()
    return body["data"]["launchRun"]["run"]["runId"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    admin_url = normalize_database_url(
        os.environ.get("TRADEOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    redis_url = os.environ.get("TRADEOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    tag = f"{os.getpid()}_{secrets.token_hex(3)}"
    tradeos_db, dagster_db = f"tradeos_bench_{tag}", f"dagster_bench_{tag}"
    home = Path(tempfile.mkdtemp(prefix="bench_dagster_"))
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: tradeos_pipelines.definitions\n"
        "      location_name: tradeos_pipelines\n"
        f"      working_directory: {ROOT}\n"
        "  - python_file:\n"
        f"      relative_path: {ROOT / 'bench' / 'dagster_trivial.py'}\n"
        "      location_name: bench_trivial\n"
        f"      working_directory: {ROOT}\n"
    )
    database_url = create_database(admin_url, tradeos_db)
    dagster_url = create_database(admin_url, dagster_db)
    os.environ.update(
        {
            "TRADEOS_DATABASE_URL": database_url,
            "TRADEOS_REDIS_URL": redis_url,
            "TRADEOS_REDIS_NAMESPACE": f"tradeos-bench-{tag}",
            "TRADEOS_SECRET_KEY": new_secret_key(),
            "TRADEOS_NOMENCLATURE_SCHEDULE_CRON": FAR_AWAY_CRON,
            "TRADEOS_STOCK_ORDERS_SCHEDULE_CRON": FAR_AWAY_CRON,
            "DAGSTER_HOME": str(home),
            "TRADEOS_DAGSTER_DATABASE_URL": dagster_url,
        }
    )
    get_settings.cache_clear()

    from dagster import DagsterInstance

    from tests.dagster.processes import dagster_processes
    from tradeos_pipelines.core.secrets import encrypt_json
    from tradeos_pipelines.emulators.http_service import EmulatorServer
    from tradeos_pipelines.launch import request_sync
    from tradeos_pipelines.storage.database import session_scope
    from tradeos_pipelines.storage.migrate import upgrade_to_head
    from tradeos_pipelines.storage.tables import Integration, SyncLog

    upgrade_to_head(database_url)
    rows: list[dict[str, float | str]] = []
    emulator = EmulatorServer(items=args.items, api_key="bench-key")
    try:
        with session_scope(database_url) as session:
            session.add(
                Integration(
                    id="bench-1c",
                    name="bench",
                    base_url=emulator.base_url,
                    auth_type="api_key",
                    credentials_encrypted=encrypt_json({"api_key": "bench-key"}),
                    # The change sensor would start syncs by itself; the benchmark starts them.
                    enabled=False,
                )
            )
        instance = DagsterInstance.from_config(str(home))
        with dagster_processes(home / "logs", workspace=workspace) as dagster:
            for i in range(args.repeat):
                submitted = time.time()
                launch = request_sync(
                    "bench-1c",
                    ["nomenclature"],
                    full=True,
                    source="manual",
                    dagster_url=dagster.url,
                )
                record = wait_finished(instance, launch.run_ids[0])
                with session_scope(database_url) as session:
                    log = session.query(SyncLog).filter_by(run_id=launch.run_ids[0]).one()
                    engine_s = (log.finished_at - log.started_at).total_seconds()
                    committed_s = log.finished_at.timestamp() - submitted
                rows.append(
                    {
                        "run": f"sync {i + 1} ({args.items} items, full)",
                        "status": record.dagster_run.status.value,
                        "total_s": record.end_time - submitted,
                        "launch_queue_s": record.start_time - submitted,
                        "engine_s": engine_s,
                        "committed_s": committed_s,
                        "fetched": log.fetched,
                    }
                )
            for i in range(args.repeat):
                submitted = time.time()
                record = wait_finished(instance, launch_noop(dagster.url))
                rows.append(
                    {
                        "run": f"trivial asset {i + 1}",
                        "status": record.dagster_run.status.value,
                        "total_s": record.end_time - submitted,
                        "launch_queue_s": record.start_time - submitted,
                        "engine_s": 0.0,
                        "committed_s": 0.0,
                        "fetched": 0,
                    }
                )
        instance.dispose()
    finally:
        emulator.stop()
        drop_database(admin_url, tradeos_db)
        drop_database(admin_url, dagster_db)
        shutil.rmtree(home, ignore_errors=True)

    header = f"{'run':<32}{'status':>9}{'total s':>9}{'launch+queue s':>16}{'engine s':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['run']:<32}{r['status']:>9}{r['total_s']:>9.2f}"
            f"{r['launch_queue_s']:>16.2f}{r['engine_s']:>10.2f}"
        )
    syncs = [r for r in rows if str(r["run"]).startswith("sync")]
    noops = [r for r in rows if str(r["run"]).startswith("trivial")]
    summary = {
        "items": args.items,
        "sync_total_median_s": statistics.median(float(r["total_s"]) for r in syncs),
        "sync_launch_queue_median_s": statistics.median(float(r["launch_queue_s"]) for r in syncs),
        "sync_engine_median_s": statistics.median(float(r["engine_s"]) for r in syncs),
        "sync_committed_median_s": statistics.median(float(r["committed_s"]) for r in syncs),
        "trivial_total_median_s": statistics.median(float(r["total_s"]) for r in noops),
    }
    print(json.dumps(summary, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"summary": summary, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()

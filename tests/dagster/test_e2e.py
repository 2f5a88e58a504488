"""End to end: dagster-webserver and dagster-daemon as subprocesses sync the 1C emulator.

Nobody triggers anything at first: the partition sensor adds the integration's partition, the
change sensor sees that 1C has data and syncs the catalogue, and the (every-minute, set through
settings) stock and orders schedules tick. Then "sync now" goes through the GraphQL API and a
1C webhook through ``sync_requests`` and the request sensor.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from sqlalchemy import func, select

from tests.dagster.processes import dagster_processes
from tradeos_pipelines.core.settings import today_in_schedule_timezone
from tradeos_pipelines.launch import request_sync
from tradeos_pipelines.storage.tables import Product, Stock, SyncRequest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def wait_for(what: str, probe: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def materialized(instance: DagsterInstance, key: list[str], partition: str) -> bool:
    return partition in instance.get_materialized_partitions(AssetKey(key))


def run_of(instance: DagsterInstance, key: list[str], partition: str):
    record = instance.get_latest_materialization_event(AssetKey(key))
    assert record is not None and record.asset_materialization.partition == partition
    return instance.get_run_by_id(record.run_id)


def scheduled_success(instance: DagsterInstance, schedule: str, partition: str):
    runs = instance.get_runs(
        filters=RunsFilter(
            tags={"dagster/schedule_name": schedule, "dagster/partition": partition},
            statuses=[DagsterRunStatus.SUCCESS],
        ),
        limit=1,
    )
    return runs[0] if runs else None


def finished_run(instance: DagsterInstance, run_id: str):
    run = instance.get_run_by_id(run_id)
    return run if run is not None and run.status in FINISHED else None


def test_sensors_and_schedules_sync_without_a_trigger(
    instance, session, make_integration, emulator, tmp_path
) -> None:
    make_integration("main-1c", base_url=emulator.base_url)
    orders_partition = f"{today_in_schedule_timezone().isoformat()}|main-1c"
    env = {
        "TRADEOS_STOCK_ORDERS_SCHEDULE_CRON": "* * * * *",
        "TRADEOS_CHANGE_SENSOR_INTERVAL_SECONDS": "5",
        "TRADEOS_REQUEST_SENSOR_INTERVAL_SECONDS": "2",
        # CI machines are shared: give the code server time to answer under load.
        "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
        "DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS": "180",
        "DAGSTER_SCHEDULE_GRPC_TIMEOUT_SECONDS": "180",
    }
    with dagster_processes(tmp_path / "dagster-logs", env) as dagster:
        wait_for(
            "the change sensor's catalogue sync",
            lambda: materialized(instance, ["tradeos", "products"], "main-1c"),
            420,
        )
        products_run = run_of(instance, ["tradeos", "products"], "main-1c")
        assert products_run.tags["tradeos/source"] == "change"
        assert products_run.tags["tradeos/lane"] == "main-1c:nomenclature"

        # The every-minute schedules tick by themselves and their runs succeed (the change
        # sensor may have synced the same partitions already; both are fine).
        for schedule, partition in (
            ("stock_every_15_minutes", "main-1c"),
            ("orders_every_15_minutes", orders_partition),
        ):
            run = wait_for(
                f"a successful run of {schedule}",
                lambda s=schedule, p=partition: scheduled_success(instance, s, p),
                420,
            )
            assert run.tags["tradeos/source"] == "schedule"
        assert materialized(instance, ["tradeos", "stock"], "main-1c")
        assert materialized(instance, ["onec", "order_export"], orders_partition)
        assert materialized(instance, ["tradeos", "order_statuses"], orders_partition)

        assert session.scalar(select(func.count()).select_from(Product)) > 0
        assert session.scalar(select(func.count()).select_from(Stock)) > 0

        # "Sync now" through the webserver's GraphQL API: a run id at once, run succeeds.
        launch = request_sync(
            "main-1c", ["stock"], full=True, source="manual", dagster_url=dagster.url
        )
        assert launch.request_id is None and len(launch.run_ids) == 1
        run = wait_for("the manual run", lambda: finished_run(instance, launch.run_ids[0]), 240)
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.tags["tradeos/full"] == "true" and run.tags["dagster/priority"] == "10"
        assert run.tags["dagster/partition"] == "main-1c"

        # A 1C webhook waits in sync_requests; the request sensor starts its run.
        hook = request_sync("main-1c", ["nomenclature"], full=False, source="webhook")
        assert hook.run_ids == [] and hook.request_id is not None

        def recorded() -> list[str] | None:
            session.expire_all()
            return session.get(SyncRequest, hook.request_id).run_ids

        run_ids = wait_for("the request sensor", recorded, 120)
        run = wait_for("the webhook run", lambda: finished_run(instance, run_ids[0]), 240)
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.tags["tradeos/source"] == "webhook"
        assert run.tags["dagster/sensor_name"] == "sync_requests"

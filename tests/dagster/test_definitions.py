"""The code location loads, and shows the assets, jobs, schedules and sensors the UI relies on."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from dagster import (
    AssetKey,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    MultiPartitionsDefinition,
)

from tradeos_pipelines.core.settings import PROJECT_ROOT, Settings, today_in_schedule_timezone
from tradeos_pipelines.definitions import defs


def test_definitions_validate_in_a_subprocess(dagster_home: Path) -> None:
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "tradeos_pipelines.definitions"],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_asset_graph_and_partitions() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "onec/nomenclature",
        "onec/stock",
        "onec/orders",
        "tradeos/orders",
        "tradeos/products",
        "tradeos/stock",
        "onec/order_export",
        "tradeos/order_statuses",
    }
    parents = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert parents["tradeos/products"] == {"onec/nomenclature"}
    assert parents["tradeos/stock"] == {"onec/stock", "tradeos/products"}
    assert parents["onec/order_export"] == {"tradeos/orders"}
    assert parents["tradeos/order_statuses"] == {"onec/order_export", "onec/orders"}

    products = graph.get(AssetKey(["tradeos", "products"]))
    assert isinstance(products.partitions_def, DynamicPartitionsDefinition)
    assert products.partitions_def.name == "integrations"
    assert products.owners == ["team:integrations"] and products.description
    orders = graph.get(AssetKey(["onec", "order_export"])).partitions_def
    assert isinstance(orders, MultiPartitionsDefinition)
    dims = {d.name: d.partitions_def for d in orders.partitions_defs}
    assert isinstance(dims["integration"], DynamicPartitionsDefinition)
    assert isinstance(dims["date"], DailyPartitionsDefinition)
    assert dims["date"].timezone == "Europe/Moscow"
    # Days from the first of the previous month, not years of "Missing" partitions.
    today = today_in_schedule_timezone()
    keys = dims["date"].get_partition_keys()
    first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    assert keys[0] == first.isoformat() and keys[-1] == today.isoformat()
    assert len(keys) == (today - first).days + 1

    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == {
        ("tradeos/stock", "no_negative_available_stock"),
        ("tradeos/stock", "stock_rows_have_known_product"),
        ("tradeos/products", "product_count_matches_onec_total"),
        ("onec/order_export", "no_orders_stuck_in_export_failed"),
    }


def test_orders_partitions_start_is_a_setting(dagster_home: Path) -> None:
    """TRADEOS_ORDERS_PARTITIONS_START moves the first day; the keys keep their form."""
    probe = (
        "from tradeos_pipelines.defs.partitions import order_days_partitions_def as d;"
        "keys = d.get_partition_keys(); print(keys[0], len(keys) > 300)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_ROOT,
        env={**os.environ, "TRADEOS_ORDERS_PARTITIONS_START": "2025-01-01"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.split() == ["2025-01-01", "True"], result.stderr
    settings = Settings(orders_partitions_start=None)
    assert settings.orders_partitions_start_date(date(2026, 3, 15)) == date(2026, 2, 1)
    assert settings.orders_partitions_start_date(date(2026, 1, 1)) == date(2025, 12, 1)


def test_jobs_schedules_and_sensors() -> None:
    repo = defs.get_repository_def()
    assert {"nomenclature_sync", "stock_sync", "orders_sync"} <= set(repo.job_names)
    schedules = {s.name: s for s in repo.schedule_defs}
    assert {name: s.cron_schedule for name, s in schedules.items()} == {
        "nomenclature_hourly": "0 * * * *",
        "stock_every_15_minutes": "*/15 * * * *",
        "orders_every_15_minutes": "*/15 * * * *",
    }
    for s in schedules.values():
        assert s.default_status == DefaultScheduleStatus.RUNNING
        assert s.execution_timezone == "Europe/Moscow"
    assert schedules["nomenclature_hourly"].job_name == "nomenclature_sync"
    assert schedules["orders_every_15_minutes"].job_name == "orders_sync"

    sensors = {s.name: s for s in repo.sensor_defs}
    assert set(sensors) == {
        "integration_partitions",
        "sync_requests",
        "onec_changes",
        "sync_failure_alerts",
        "sync_health_alerts",
    }
    for s in sensors.values():
        assert s.default_status == DefaultSensorStatus.RUNNING
    assert sensors["sync_requests"].minimum_interval_seconds <= 5
    assert sensors["onec_changes"].minimum_interval_seconds == 60

"""Materialize each asset per partition on a real instance, database and 1C emulator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    materialize,
)
from sqlalchemy import func, select

from tradeos_pipelines.core.settings import get_settings, today_in_schedule_timezone
from tradeos_pipelines.core.vocabulary import run_tags
from tradeos_pipelines.defs.assets import (
    onec_order_export,
    tradeos_order_statuses,
    tradeos_products,
    tradeos_stock,
)
from tradeos_pipelines.defs.checks import sync_checks
from tradeos_pipelines.defs.sensors import sync_failure_alerts
from tradeos_pipelines.devstack.embedded import find_free_port
from tradeos_pipelines.event_bus import decode_event, stream_key
from tradeos_pipelines.storage.tables import Order, OrderItem, Product, Stock, SyncLog

COUNTS = ("fetched", "created", "updated", "unchanged", "deleted", "conflicts", "rejected")


def run(instance: DagsterInstance, tradeos, assets, partition_key, **kwargs):
    return materialize(
        [*assets, *sync_checks],
        selection=assets,
        partition_key=partition_key,
        instance=instance,
        resources={"tradeos": tradeos},
        **kwargs,
    )


def metadata_of(result, node: str) -> dict:
    (event,) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in event.metadata.items()}


def checks_of(result) -> dict[str, AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_products_then_stock_per_partition(
    instance, tradeos, session, partitions, make_integration, emulator
) -> None:
    make_integration("main-1c", base_url=emulator.base_url)
    make_integration("other-1c", base_url=emulator.base_url)
    partitions("main-1c", "other-1c")

    products = run(instance, tradeos, [tradeos_products], "main-1c")
    assert products.success
    meta = metadata_of(products, "tradeos__products")
    log = session.get(SyncLog, meta["sync_log_id"])
    assert (log.integration_id, log.entity) == ("main-1c", "nomenclature")
    assert log.run_id == products.run_id
    assert meta["status"] == log.status == "success"
    assert {k: meta[k] for k in COUNTS} == {k: getattr(log, k) for k in COUNTS}
    assert meta["created"] > 0 and meta["sync_version"] == log.sync_version
    # The first sync of an integration reads everything though nobody asked for a full pass:
    # the tag and the metadata say what was asked, full_read what happened, and why.
    assert products.dagster_run.tags.get("tradeos/full") is None
    assert (meta["full_requested"], meta["full_read"]) == (False, True)
    assert meta["full_read_reason"] == "no watermark yet: the first sync reads everything"
    assert meta["dashboard"] == (
        f"http://127.0.0.1:8000/dashboard/?integration=main-1c&operation={log.id}"
    )
    assert isinstance(meta["duration_s"], float)
    count = session.scalar(
        select(func.count()).select_from(Product).where(Product.integration_id == "main-1c")
    )
    assert count > 0
    # Only the partition that ran was synced.
    assert not session.scalar(
        select(func.count()).select_from(Product).where(Product.integration_id == "other-1c")
    )
    total_check = checks_of(products)["product_count_matches_onec_total"]
    assert total_check.passed, total_check.metadata

    again = run(instance, tradeos, [tradeos_products], "main-1c")
    again_meta = metadata_of(again, "tradeos__products")
    assert again_meta["created"] == 0
    assert (again_meta["full_requested"], again_meta["full_read"]) == (False, False)
    assert "full_read_reason" not in again_meta

    stock = run(
        instance,
        tradeos,
        [tradeos_stock],
        "main-1c",
        tags=run_tags("main-1c", "stock", full=True, source="manual"),
    )
    assert stock.success
    stock_meta = metadata_of(stock, "tradeos__stock")
    assert stock.dagster_run.tags["tradeos/full"] == "true"
    assert (stock_meta["full_requested"], stock_meta["full_read"]) == (True, True)
    assert "full_read_reason" not in stock_meta and stock_meta["fetched"] > 0
    assert session.scalar(select(func.count()).select_from(Stock)) > 0
    checks = checks_of(stock)
    assert checks["no_negative_available_stock"].passed
    assert checks["stock_rows_have_known_product"].passed
    assert instance.get_materialized_partitions(tradeos_stock.key) == {"main-1c"}


def test_orders_partition_exports_the_day_and_reads_statuses(
    instance, tradeos, session, partitions, make_integration, emulator
) -> None:
    make_integration("main-1c", base_url=emulator.base_url)
    partitions("main-1c")
    run(instance, tradeos, [tradeos_products], "main-1c")
    product = session.scalars(select(Product).where(Product.price.is_not(None)).limit(1)).one()
    # A product 1C does not know: 1C answers 422 and the order waits for a person.
    unknown = Product(integration_id="main-1c", onec_id=uuid.uuid4(), name="Нет в 1С")
    session.add(unknown)
    session.flush()
    order, refused = (
        Order(
            id=uuid.uuid4(),
            integration_id="main-1c",
            order_date=datetime.now(UTC),
            customer_name="ООО «Ромашка»",
        )
        for _ in range(2)
    )
    session.add_all([order, refused])
    session.flush()
    session.add_all(
        [
            OrderItem(order_id=order.id, product_id=product.id, quantity=1, price=product.price),
            OrderItem(order_id=refused.id, product_id=unknown.id, quantity=1, price=1),
        ]
    )
    session.commit()

    key = f"{today_in_schedule_timezone().isoformat()}|main-1c"
    result = run(instance, tradeos, [onec_order_export, tradeos_order_statuses], key)
    assert result.success
    export = metadata_of(result, "onec__order_export")
    assert export["created"] == 1 and export["status"] == "partial"
    assert metadata_of(result, "tradeos__order_statuses")["sync_log_id"] != export["sync_log_id"]
    session.expire_all()
    exported = session.get(Order, order.id)
    assert exported.status == "exported" and exported.onec_number
    assert len(emulator.control.orders(external_id=str(order.id))) == 1
    assert session.get(Order, refused.id).status == "export_failed"
    stuck = checks_of(result)["no_orders_stuck_in_export_failed"]
    assert not stuck.passed and stuck.severity.value == "WARN"
    assert stuck.metadata["export_failed"].value == 1
    assert str(refused.id) in stuck.metadata["examples"].value[0]


@pytest.fixture
def no_run_retries(monkeypatch):
    """Each failed run is one in the streak (run retries: tests/dagster/test_run_retries.py)."""
    monkeypatch.setenv("TRADEOS_RUN_RETRIES", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_failing_runs_raise_an_alert_after_the_streak(
    instance, tradeos, redis_client, partitions, make_integration, no_run_retries
) -> None:
    dead = f"http://127.0.0.1:{find_free_port()}/trade"
    make_integration("dead-1c", base_url=dead)
    partitions("dead-1c")
    tags = run_tags("dead-1c", "nomenclature", full=False, source="schedule")
    alerts = stream_key("alerts")
    for attempt in range(1, 4):
        result = run(
            instance, tradeos, [tradeos_products], "dead-1c", tags=tags, raise_on_error=False
        )
        assert not result.success
        failure = result.get_run_failure_event()
        context = build_run_status_sensor_context(
            sensor_name="sync_failure_alerts",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={"tradeos": tradeos},
        ).for_run_failure()
        sync_failure_alerts(context)
        entries = redis_client.xrange(alerts)
        assert len(entries) == (1 if attempt == 3 else 0)
    event = decode_event("alerts", *entries[0])
    assert event["type"] == "alert"
    assert event["data"]["integration_id"] == "dead-1c"
    assert event["data"]["entity"] == "nomenclature" and event["data"]["failures"] == 3
    assert "test-key" not in str(event)


def test_a_failed_sync_leaves_the_data_checks_not_evaluated(
    instance, tradeos, partitions, make_integration, emulator, no_run_retries
) -> None:
    """1C unreachable is not bad data: the stock checks say "not evaluated", never failed."""
    make_integration("dead-1c", base_url=f"http://127.0.0.1:{find_free_port()}/trade")
    partitions("dead-1c")
    result = run(instance, tradeos, [tradeos_stock], "dead-1c", raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    link = failure.metadata["dashboard"].value
    assert link.startswith("http://127.0.0.1:8000/dashboard/?integration=dead-1c&operation=")
    evaluations = [
        entry.dagster_event.event_specific_data
        for entry in instance.all_logs(
            result.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        )
    ]
    checks = {e.check_name: e for e in evaluations}
    assert sorted(checks) == ["no_negative_available_stock", "stock_rows_have_known_product"]
    for check in checks.values():
        assert (check.passed, check.severity.value) == (True, "WARN")
        assert check.description.startswith("not evaluated: the sync failed, no data was written")
        assert check.metadata["evaluated"].value is False
    # What the UI reads: every planned check of the run resolved, none as a failed execution.
    for name in checks:
        (record,) = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(tradeos_stock.key, name), limit=1
        )
        assert record.status.value == "SUCCEEDED"

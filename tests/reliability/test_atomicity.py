"""Stock and order-status syncs are all or nothing: 1C failing mid-pass changes nothing, and the
next sync commits every change (nomenclature: tests/sync/test_nomenclature.py)."""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from tradeos_pipelines.engine import (
    SyncFailed,
    export_orders,
    sync_nomenclature,
    sync_order_statuses,
    sync_stock,
)

DAY = date(2026, 11, 20)
STOCK = "SELECT product_id, warehouse_id, quantity, reserved, available, sync_version FROM stock"
ORDERS = "SELECT id, status, onec_status, onec_modified_at, updated_at FROM orders ORDER BY 1"


def _failed_mid_pass(sync, bus, onec, entity: str, after_page: int = 2) -> SyncFailed:
    """Run ``sync`` with 1C failing (HTTP 500, past the retry budget) once ``after_page`` pages
    were staged (the client reads ahead: the page two after it is the first that fails)."""
    bus.on_page(after_page, lambda: onec.fail_reads(entity, 50))
    with pytest.raises(SyncFailed) as failed:
        sync()
    bus.hooks.clear()
    onec.clear_faults()
    return failed.value


def test_stock_failing_mid_pass_changes_nothing(integration, onec, sql, bus, fault_report):
    sync_nomenclature(integration, publisher=bus)
    sync_stock(integration, publisher=bus)
    # Five pages of 50: the fault armed after the second page hits the fourth whatever else
    # the incremental read picks up (the first three are read or on the wire by then).
    onec.change_stock(250)
    before = sql(STOCK + " ORDER BY 1, 2")
    state = sql("SELECT watermark, last_sync_version FROM sync_state WHERE entity = 'stock'")

    failed_at = time.monotonic()
    failed = _failed_mid_pass(lambda: sync_stock(integration, publisher=bus), bus, onec, "stock")

    assert "500" in failed.reason
    after_fault = sql(STOCK + " ORDER BY 1, 2")
    assert after_fault == before
    assert sql("SELECT watermark, last_sync_version FROM sync_state WHERE entity = 'stock'") == (
        state
    )
    assert [e["sync_log_id"] for e in bus.of_type("sync.failed")] == [failed.sync_log_id]
    retry = sync_stock(integration, publisher=bus)
    fault_report.record(
        f"1C failing mid-pass, stock ({onec.protocol})",
        rows_lost=250 - retry.updated,
        rows_half_written=len(set(after_fault) ^ set(before)),
        recovered_in_s=time.monotonic() - failed_at,
        recovery="failing sync started → the next sync committed the 250 changes",
    )
    assert (retry.status, retry.updated, retry.created) == ("success", 250, 0)


def test_order_statuses_failing_mid_pass_change_nothing(integration, onec, sql, bus, fault_report):
    sync_nomenclature(integration, publisher=bus)
    sql("UPDATE integrations SET page_size = 1 WHERE id = :id", id=integration)
    moscow = ZoneInfo("Europe/Moscow")
    # Five orders read in pages of one: failing after the first, the fourth page fails.
    orders = [str(uuid.uuid4()) for _ in range(5)]
    for n, order_id in enumerate(orders):
        sql(
            "INSERT INTO orders (id, integration_id, order_date, customer_name) "
            "VALUES (:id, 'main-1c', :d, 'ООО «Ромашка»')",
            id=order_id,
            d=datetime(2026, 11, 20, 10, n, tzinfo=moscow),
        )
        sql(
            "INSERT INTO order_items (order_id, product_id, quantity, price) "
            "SELECT :o, id, 1, 100 FROM products WHERE is_active ORDER BY code LIMIT 1",
            o=order_id,
        )
    export_orders(integration, DAY, publisher=bus)
    sync_order_statuses(integration, DAY, publisher=bus)
    for onec_id in sql("SELECT onec_id::text FROM orders ORDER BY id"):
        status = onec.set_order_status(onec_id[0])
    before = sql(ORDERS)
    state = sql("SELECT watermark, last_sync_version FROM sync_state WHERE entity = 'orders'")

    failed_at = time.monotonic()
    failed = _failed_mid_pass(
        lambda: sync_order_statuses(integration, DAY, publisher=bus),
        bus,
        onec,
        "orders",
        after_page=1,
    )

    assert "500" in failed.reason
    after_fault = sql(ORDERS)
    assert after_fault == before
    assert sql("SELECT watermark, last_sync_version FROM sync_state WHERE entity = 'orders'") == (
        state
    )
    retry = sync_order_statuses(integration, DAY, publisher=bus)
    fault_report.record(
        f"1C failing mid-pass, order statuses ({onec.protocol})",
        rows_lost=5 - retry.updated,
        rows_half_written=len(set(after_fault) ^ set(before)),
        recovered_in_s=time.monotonic() - failed_at,
        recovery="failing sync started → the next sync committed the 5 statuses",
    )
    assert (retry.status, retry.updated) == ("success", 5)
    assert {r[0] for r in sql("SELECT onec_status FROM orders")} == {status}

"""Stock sync: snapshot vs incremental, warehouses, unknown products."""

from __future__ import annotations

import pytest

from tradeos_pipelines.engine import SyncFailed, sync_nomenclature, sync_stock

STOCK_ROWS, WAREHOUSES = 360, 3


@pytest.fixture
def catalogue(integration, bus) -> str:
    sync_nomenclature(integration, publisher=bus)
    return integration


def test_first_stock_sync_is_a_full_snapshot(catalogue, onec, sql, bus):
    result = sync_stock(catalogue, publisher=bus)

    assert result.full and result.status == "success"
    assert (result.fetched, result.created) == (onec.stock_rows, onec.stock_rows)
    assert sql("SELECT count(*) FROM stock")[0][0] == onec.stock_rows
    assert {r[0] for r in sql("SELECT name FROM warehouses")} == onec.warehouse_names
    assert sql("SELECT count(*) FROM stock WHERE available <> quantity - reserved")[0][0] == 0


@pytest.mark.http_service_only("OData stock is always a snapshot (a balance has no change time)")
def test_incremental_changes_only_what_1c_sent(catalogue, emulator, sql, bus, no_overlap):
    first = sync_stock(catalogue, publisher=bus)
    emulator.control.change_stock(4)
    before = emulator.control.counters()["rows_served"]["stock"]

    second = sync_stock(catalogue, publisher=bus)

    assert emulator.control.counters()["rows_served"]["stock"] - before == 4
    assert not second.full and second.fetched == 4
    # Each of the four rows got more goods: all four are updates.
    assert (second.updated, second.created, second.unchanged) == (4, 0, 0)
    untouched = sql("SELECT count(*) FROM stock WHERE sync_version = :v", v=first.sync_version)
    assert untouched[0][0] == STOCK_ROWS - second.updated


def _add_pair_1c_does_not_have(sql) -> tuple[int, int]:
    """A stock row in TradeOS for a product × warehouse pair absent from 1C."""
    row = sql(
        "SELECT p.id, w.id FROM products p CROSS JOIN warehouses w "
        "WHERE NOT EXISTS (SELECT 1 FROM stock s WHERE s.product_id = p.id "
        "AND s.warehouse_id = w.id) LIMIT 1"
    )[0]
    sql(
        "INSERT INTO stock (integration_id, product_id, warehouse_id, quantity, reserved, "
        "available) VALUES ('main-1c', :p, :w, 7, 0, 7)",
        p=row[0],
        w=row[1],
    )
    return row[0], row[1]


@pytest.mark.http_service_only("OData stock is always a snapshot (a balance has no change time)")
def test_full_pass_zeroes_pairs_absent_from_1c_incremental_does_not(catalogue, sql, bus):
    sync_stock(catalogue, publisher=bus)
    product, warehouse = _add_pair_1c_does_not_have(sql)
    quantity = "SELECT quantity FROM stock WHERE product_id = :p AND warehouse_id = :w"

    incremental = sync_stock(catalogue, publisher=bus)
    assert incremental.deleted == 0
    assert sql(quantity, p=product, w=warehouse)[0][0] == 7

    full = sync_stock(catalogue, full=True, publisher=bus)
    assert full.deleted == 1 and full.unchanged == STOCK_ROWS
    assert sql(quantity, p=product, w=warehouse)[0][0] == 0
    assert sql("SELECT count(*) FROM stock")[0][0] == STOCK_ROWS + 1  # zeroed, not deleted
    zeroed = bus.of_type("stock.updated")[-1]
    assert zeroed["sync_version"] == full.sync_version and len(zeroed["product_onec_ids"]) == 1


def test_stock_for_unknown_product_is_rejected(catalogue, onec, sql, bus):
    unknown, rows = onec.stock_of_unknown_good()

    result = sync_stock(catalogue, publisher=bus)

    assert result.status == "partial" and result.rejected == rows
    assert result.created == onec.stock_rows
    rejects = sql("SELECT onec_id, reason FROM sync_rejects")
    assert [r.onec_id for r in rejects] == [unknown] * rows
    assert all("unknown product" in r.reason for r in rejects)


def test_stock_before_any_nomenclature_rejects_everything(integration, onec, sql, bus):
    with pytest.raises(SyncFailed) as failed:
        sync_stock(integration, publisher=bus)
    rows = onec.stock_rows
    assert f"{rows} of {rows} rows rejected" in failed.value.reason
    assert sql("SELECT count(*) FROM stock")[0][0] == 0
    assert sql("SELECT count(*) FROM warehouses")[0][0] == 0

"""Orders export to 1C (idempotent, 422, 1C down) and order statuses back from 1C."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tradeos_pipelines.engine import (
    SyncFailed,
    export_orders,
    sync_nomenclature,
    sync_order_statuses,
)

MOSCOW = ZoneInfo("Europe/Moscow")
# Orders the emulators' 1C holds that were entered there, not sent by TradeOS.
OWN_ORDERS_IN_1C = {"http_service": 10, "odata": 5}
DAY = date(2026, 11, 20)


@pytest.fixture
def catalogue(integration, bus) -> str:
    sync_nomenclature(integration, publisher=bus)
    return integration


def _order(sql, *, when: datetime | None = None, product_id: int | None = None) -> str:
    order_id = str(uuid.uuid4())
    when = when or datetime(2026, 11, 20, 10, 15, tzinfo=MOSCOW)
    sql(
        "INSERT INTO orders (id, integration_id, order_date, customer_name, customer_inn) "
        "VALUES (:id, 'main-1c', :d, 'ООО «Ромашка»', '7701234567')",
        id=order_id,
        d=when,
    )
    if product_id is None:
        product_id = sql("SELECT id FROM products WHERE is_active ORDER BY code LIMIT 1")[0][0]
    sql(
        "INSERT INTO order_items (order_id, product_id, quantity, price) "
        "VALUES (:o, :p, 2, 1234.50)",
        o=order_id,
        p=product_id,
    )
    return order_id


def _state(sql, order_id: str):
    return sql(
        "SELECT status, onec_id, onec_number, onec_status, exported_at, export_error "
        "FROM orders WHERE id = :id",
        id=order_id,
    )[0]


def test_export_sends_the_days_waiting_orders_once(catalogue, onec, sql, bus):
    today = _order(sql)
    other_day = _order(sql, when=datetime(2026, 11, 21, 0, 30, tzinfo=MOSCOW))

    result = export_orders(catalogue, DAY, publisher=bus)

    assert (result.entity, result.status, result.created, result.fetched) == (
        "order_export",
        "success",
        1,
        1,
    )
    state = _state(sql, today)
    assert state.status == "exported" and state.onec_number and state.exported_at
    [in_1c] = onec.orders_for(today)
    assert in_1c["number"] == state.onec_number and str(state.onec_id) == in_1c["id"]
    assert _state(sql, other_day).status == "new"
    assert bus.of_type("order.updated")[0]["order_ids"] == [today]

    again = export_orders(catalogue, DAY, publisher=bus)
    assert again.fetched == 0 and len(onec.orders_for(today)) == 1


def test_export_retry_after_lost_database_never_duplicates_in_1c(catalogue, onec, sql, bus):
    order_id = _order(sql)
    # The sync's PostgreSQL session dies right when it records 1C's answer: 1C has the order,
    # TradeOS does not know.
    sql(
        "CREATE FUNCTION drop_exporting_session() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$"
    )
    sql(
        "CREATE TRIGGER drop_exporting_session BEFORE UPDATE ON orders FOR EACH ROW "
        "WHEN (NEW.status = 'exported') EXECUTE FUNCTION drop_exporting_session()"
    )
    try:
        with pytest.raises(SyncFailed) as failed:
            export_orders(catalogue, DAY, publisher=bus)
    finally:
        sql("DROP TRIGGER drop_exporting_session ON orders")
        sql("DROP FUNCTION drop_exporting_session()")
    assert "PostgreSQL connection" in failed.value.reason
    assert _state(sql, order_id).status == "new"
    assert len(onec.orders_for(order_id)) == 1

    retry = export_orders(catalogue, DAY, publisher=bus)

    assert retry.status == "success" and retry.updated == 1 and retry.created == 0
    assert _state(sql, order_id).status == "exported"
    assert len(onec.orders_for(order_id)) == 1


@pytest.mark.http_service_only("the OData emulator takes an order for an unknown good")
def test_refused_order_is_marked_and_the_others_go_on(catalogue, emulator, sql, bus):
    unknown = sql(
        "INSERT INTO products (integration_id, onec_id, name) "
        "VALUES ('main-1c', gen_random_uuid(), 'Нет в 1С') RETURNING id"
    )[0][0]
    refused = _order(sql, product_id=unknown, when=datetime(2026, 11, 20, 9, 0, tzinfo=MOSCOW))
    accepted = _order(sql)

    result = export_orders(catalogue, DAY, publisher=bus)

    assert result.status == "partial" and (result.created, result.rejected) == (1, 1)
    state = _state(sql, refused)
    assert state.status == "export_failed" and "Номенклатура не найдена" in state.export_error
    assert _state(sql, accepted).status == "exported"
    reject = sql("SELECT onec_id, reason FROM sync_rejects")[0]
    assert reject.onec_id == refused and reject.reason == state.export_error
    assert sql("SELECT status FROM sync_logs WHERE id = :id", id=result.sync_log_id)[0][0] == (
        "partial"
    )


@pytest.mark.http_service_only("the OData emulator takes an order for an unknown good")
def test_a_refused_order_exported_after_a_fix_resolves_its_reject(catalogue, emulator, sql, bus):
    unknown = sql(
        "INSERT INTO products (integration_id, onec_id, name) "
        "VALUES ('main-1c', gen_random_uuid(), 'Нет в 1С') RETURNING id"
    )[0][0]
    fixed = _order(sql, product_id=unknown, when=datetime(2026, 11, 20, 9, 0, tzinfo=MOSCOW))
    still_bad = _order(sql, product_id=unknown, when=datetime(2026, 11, 20, 9, 5, tzinfo=MOSCOW))
    refused = export_orders(catalogue, DAY, publisher=bus)
    assert (refused.status, refused.rejected) == ("partial", 2)
    # A person puts a good 1C knows into one order and sends it again.
    known = sql("SELECT id FROM products WHERE is_active ORDER BY code LIMIT 1")[0][0]
    sql("UPDATE order_items SET product_id = :p WHERE order_id = :o", p=known, o=fixed)
    sql("UPDATE orders SET status = 'new' WHERE id = :o", o=fixed)

    result = export_orders(catalogue, DAY, publisher=bus)

    assert (result.status, result.created, result.rejected) == ("success", 1, 0)
    assert _state(sql, fixed).status == "exported"
    rejects = sql(
        "SELECT onec_id, sync_log_id, resolved_by_sync_log_id, resolved_at IS NOT NULL "
        "FROM sync_rejects ORDER BY onec_id = :bad",
        bad=still_bad,
    )
    assert [tuple(r) for r in rejects] == [
        (fixed, refused.sync_log_id, result.sync_log_id, True),
        (still_bad, refused.sync_log_id, None, False),
    ]


def test_1c_unavailable_stops_the_export_and_orders_stay_new(catalogue, onec, sql, bus):
    order_id = _order(sql)
    onec.fail_order_posts(20)

    with pytest.raises(SyncFailed) as failed:
        export_orders(catalogue, None, publisher=bus)

    assert failed.value.reason.startswith("1C:")
    assert _state(sql, order_id).status == "new"
    assert onec.orders_for(order_id) == []
    log = sql("SELECT status FROM sync_logs WHERE id = :id", id=failed.value.sync_log_id)[0]
    assert log.status == "failed"


def test_statuses_come_back_from_1c(catalogue, onec, sql, bus):
    order_id = _order(sql)
    export_orders(catalogue, DAY, publisher=bus)
    first = sync_order_statuses(catalogue, DAY, publisher=bus)
    # The exported order and 1C's own orders: nothing to change in TradeOS.
    read = 1 + OWN_ORDERS_IN_1C[onec.protocol]
    assert first.full and (first.fetched, first.unchanged) == (read, read)

    onec_id = str(_state(sql, order_id).onec_id)
    status = onec.set_order_status(onec_id)
    second = sync_order_statuses(catalogue, DAY, publisher=bus)

    assert not second.full and second.updated == 1
    assert _state(sql, order_id).onec_status == status
    assert bus.of_type("order.updated")[-1]["order_ids"] == [order_id]


def test_odata_posting_refused_marks_the_order_and_keeps_the_1c_document(catalogue, onec, sql, bus):
    if onec.protocol != "odata":
        pytest.skip("OData only: the HTTP service creates and posts in one call")
    order_id = _order(sql)
    onec.control.arm_posting_failure(1, "Недостаточно товара на складе")

    result = export_orders(catalogue, DAY, publisher=bus)

    assert result.status == "partial" and (result.created, result.rejected) == (0, 1)
    [in_1c] = onec.orders_for(order_id)
    state = _state(sql, order_id)
    assert state.status == "export_failed"
    assert str(state.onec_id) == in_1c["id"] and state.onec_number == in_1c["number"]
    assert state.export_error == (
        f"1C created order {in_1c['number']} but refused to post it: Недостаточно товара на складе"
    )

    # A person sends it again: the same 1C document is found and posted, not a second one.
    sql("UPDATE orders SET status = 'new' WHERE id = :id", id=order_id)
    again = export_orders(catalogue, DAY, publisher=bus)
    assert (again.status, again.updated, again.created) == ("success", 1, 0)
    assert _state(sql, order_id).status == "exported"
    assert onec.orders_for(order_id) == [in_1c]


def test_status_sync_finds_an_order_whose_export_answer_was_lost(catalogue, onec, sql, bus):
    sync_order_statuses(catalogue, None, publisher=bus)  # sets the watermark
    order_id = _order(sql)
    # 1C created the order (an earlier attempt), TradeOS still has it as new.
    product = sql("SELECT onec_id FROM products WHERE is_active ORDER BY code LIMIT 1")[0][0]
    onec.create_order(order_id, str(product))

    result = sync_order_statuses(catalogue, DAY, publisher=bus)

    assert result.updated == 1
    state = _state(sql, order_id)
    assert state.status == "exported" and state.onec_number


@pytest.mark.http_service_only("OData reads order statuses by document date, not change time")
def test_day_widens_the_read_window_to_the_start_of_that_day(catalogue, sql, bus):
    sync_order_statuses(catalogue, None, publisher=bus)
    sql(
        "UPDATE sync_state SET watermark = :w WHERE entity = 'orders'",
        w=datetime.now(MOSCOW) + timedelta(days=1),
    )
    # From the (future) watermark nothing is read; for a day, everything since that day is.
    assert sync_order_statuses(catalogue, None, publisher=bus).fetched == 0
    wide = sync_order_statuses(catalogue, date(2025, 6, 1), publisher=bus)
    assert wide.fetched == 10


def test_status_counters_add_up_to_the_rows_read(catalogue, onec, sql, bus):
    """Orders entered in 1C directly have no TradeOS order to update: they count as unchanged,
    so fetched = created + updated + unchanged + rejected (the Dagster UI showed 250 fetched
    and all zeros)."""
    order_id = _order(sql)
    export_orders(catalogue, DAY, publisher=bus)
    onec.set_order_status(str(_state(sql, order_id).onec_id))

    result = sync_order_statuses(catalogue, None, publisher=bus)

    own = OWN_ORDERS_IN_1C[onec.protocol]
    assert sql("SELECT count(*) FROM orders")[0][0] == 1
    assert (result.fetched, result.created, result.updated, result.rejected) == (1 + own, 0, 1, 0)
    assert result.unchanged == own

"""Nomenclature sync against the 1C emulator over HTTP, into the real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradeos_pipelines.engine import SyncFailed, sync_nomenclature
from tradeos_pipelines.engine.connection import application_name

from .conftest import INTEGRATION

ITEMS, FOLDERS = 200, 4


def test_first_sync_is_full_and_creates_everything(integration, onec, sql, bus):
    items, folders = onec.items, onec.folders
    result = sync_nomenclature(integration, publisher=bus)

    assert result.full and result.status == "success"
    assert (result.fetched, result.created, result.updated) == (items + folders, items + folders, 0)
    assert result.onec_total == items + folders
    assert sql("SELECT count(*) FROM products")[0][0] == items
    assert sql("SELECT count(*) FROM product_groups")[0][0] == folders
    assert sql("SELECT count(*) FROM products WHERE group_onec_id IS NOT NULL")[0][0] == items
    # The catalogue comes with deletion marks: those products exist, inactive.
    assert sql("SELECT count(*) FROM products WHERE NOT is_active")[0][0] == onec.deleted
    log = sql('SELECT status, sync_version, created, "full" FROM sync_logs')[0]
    assert tuple(log) == ("success", result.sync_version, items + folders, True)
    # A creation is stamped on the product, not copied into product_history.
    assert sql("SELECT count(*) FROM product_history")[0][0] == 0
    assert (
        sql("SELECT count(*) FROM products WHERE created_sync_version = :v", v=result.sync_version)[
            0
        ][0]
        == items
    )
    state = sql("SELECT watermark, onec_total FROM sync_state WHERE entity = 'nomenclature'")[0]
    assert state.watermark is not None and state.onec_total == items + folders


def test_incremental_reads_only_changes_and_skips_unchanged_versions(
    integration, onec, sql, bus, no_overlap
):
    first = sync_nomenclature(integration, publisher=bus)
    changed = onec.change_items(3)
    before = onec.rows_served()

    second = sync_nomenclature(integration, publisher=bus)

    # OData has no change times: it reads Ref_Key,DataVersion of every row, then the 3.
    assert onec.rows_served() - before == onec.scan_rows + 3
    assert not second.full
    assert (second.fetched, second.updated, second.created, second.unchanged) == (3, 3, 0, 0)
    versions = dict(sql("SELECT onec_id::text, sync_version FROM products"))
    assert {k for k, v in versions.items() if v == second.sync_version} == set(changed)
    assert sum(v == first.sync_version for v in versions.values()) == onec.items - 3


@pytest.mark.http_service_only("the overlap window re-reads rows by modification time")
def test_overlap_rereads_recent_rows_without_rewriting_them(integration, emulator, sql, bus):
    sync_nomenclature(integration, publisher=bus)
    changed = emulator.control.change_items(2)
    second = sync_nomenclature(integration, publisher=bus)

    # Nothing changed since, but the overlap window (5 min) reads the two recent rows again.
    third = sync_nomenclature(integration, publisher=bus)

    assert third.fetched >= 2 and third.unchanged == third.fetched and third.updated == 0
    rows = sql("SELECT sync_version FROM products WHERE onec_id::text = ANY(:ids)", ids=changed)
    assert {r[0] for r in rows} == {second.sync_version}
    assert (
        sql("SELECT count(*) FROM product_history WHERE sync_version = :v", v=third.sync_version)[
            0
        ][0]
        == 0
    )


@pytest.mark.http_service_only("keyset paging serves an edited row again at the end")
def test_same_row_twice_in_one_pass_last_wins(integration, emulator, sql, bus):
    # An item read on page 1 is edited in 1C while page 2 is read: keyset paging serves it
    # again at the end with its new version; the later copy must win.
    target = {}

    def edit_first_item():
        target["id"] = emulator.control.change_items(1)[0]

    bus.on_page(1, edit_first_item)
    result = sync_nomenclature(integration, publisher=bus)

    assert result.fetched == ITEMS + FOLDERS + 1
    assert result.created == ITEMS + FOLDERS
    served = emulator.control.counters()["rows_served"]["nomenclature"]
    assert served == ITEMS + FOLDERS + 1
    price = sql("SELECT price FROM products WHERE onec_id::text = :id", id=target["id"])[0][0]
    bus.hooks.clear()
    emulator_price = _emulator_item(emulator, target["id"])["price"]
    assert price == Decimal(str(emulator_price)).quantize(Decimal("0.01"))


def _emulator_item(emulator, item_id: str) -> dict:
    import httpx

    body = httpx.get(
        emulator.base_url + "/hs/api/nomenclature",
        params={"limit": 1000},
        headers={"X-API-Key": "test-key"},
    ).json()
    return next(i for i in body["items"] if i["id"] == item_id)


def test_deletion_mark_deactivates_and_never_deletes(integration, onec, sql, bus):
    sync_nomenclature(integration, publisher=bus)
    [marked] = onec.mark_deleted(1)

    result = sync_nomenclature(integration, publisher=bus)

    assert result.deleted == 1
    row = sql("SELECT id, is_active FROM products WHERE onec_id::text = :id", id=marked)[0]
    assert row.is_active is False
    assert sql("SELECT count(*) FROM products")[0][0] == onec.items
    change = sql(
        "SELECT change, previous->>'is_active', current->>'is_active' FROM product_history "
        "WHERE product_id = :p AND sync_version = :v",
        p=row.id,
        v=result.sync_version,
    )
    assert [tuple(c) for c in change] == [("deactivated", "true", "false")]


def test_folders_go_to_product_groups(integration, onec, sql, bus):
    sync_nomenclature(integration, publisher=bus)
    groups = sql("SELECT name, onec_id FROM product_groups ORDER BY name")
    assert len(groups) == onec.folders and all(g.name for g in groups)
    # Every product points at one of the synced folders.
    orphans = sql(
        "SELECT count(*) FROM products p LEFT JOIN product_groups g "
        "ON g.onec_id = p.group_onec_id WHERE g.id IS NULL"
    )[0][0]
    assert orphans == 0


@pytest.mark.http_service_only("a bad price over OData leaves the good without a price, no reject")
def test_bad_rows_are_rejected_and_the_rest_synced(integration, emulator, sql, bus):
    emulator.control.inject_bad_rows("no_name", 1)
    emulator.control.inject_bad_rows("bad_price", 1)

    result = sync_nomenclature(integration, publisher=bus)

    assert result.status == "partial" and result.rejected == 2
    assert result.created == ITEMS + FOLDERS
    rejects = sql("SELECT reason, payload, sync_log_id FROM sync_rejects ORDER BY reason")
    assert len(rejects) == 2 and {r.sync_log_id for r in rejects} == {result.sync_log_id}
    assert any("name" in r.reason for r in rejects) and any("price" in r.reason for r in rejects)
    assert all(r.payload for r in rejects)
    assert sql("SELECT status, rejected FROM sync_logs")[0] == ("partial", 2)


def test_reject_ratio_above_limit_fails_and_writes_nothing(integration, onec, sql, bus):
    onec.clear_names(12)  # 12 of 216 (HTTP: appended) or 204 (OData) rows: above 5%
    rows = onec.items + onec.folders + (12 if onec.nameless_is_new else 0)

    with pytest.raises(SyncFailed) as failed:
        sync_nomenclature(integration, publisher=bus)

    assert f"12 of {rows} rows rejected" in failed.value.reason
    assert sql("SELECT count(*) FROM products")[0][0] == 0
    assert sql("SELECT count(*) FROM product_groups")[0][0] == 0
    assert sql("SELECT count(*) FROM sync_state")[0][0] == 0
    assert sql("SELECT count(*) FROM sync_rejects")[0][0] == 12  # kept for diagnosis
    log = sql("SELECT status, error FROM sync_logs WHERE id = :id", id=failed.value.sync_log_id)
    assert log[0].status == "failed" and "rejected" in log[0].error
    assert not bus.of_type("product.updated") and bus.of_type("sync.failed")


def _snapshot(sql) -> list:
    return [
        tuple(r)
        for r in sql(
            "SELECT onec_id, name, price, is_active, onec_version, sync_version FROM products "
            "ORDER BY onec_id"
        )
    ]


def test_1c_failure_mid_pass_changes_nothing_and_retry_succeeds(integration, onec, sql, bus):
    sync_nomenclature(integration, publisher=bus)
    onec.change_items(120)  # three pages of changes
    before = _snapshot(sql)
    watermark = sql("SELECT watermark FROM sync_state")[0][0]

    # 1C fails from page 3 on, longer than the client's retries last.
    bus.on_page(2, lambda: onec.fail_catalogue_reads(50))
    with pytest.raises(SyncFailed) as failed:
        sync_nomenclature(integration, publisher=bus)

    assert _snapshot(sql) == before
    assert sql("SELECT watermark FROM sync_state")[0][0] == watermark
    log = sql("SELECT status, error FROM sync_logs WHERE id = :id", id=failed.value.sync_log_id)[0]
    assert log.status == "failed" and "500" in log.error
    assert [e for e in bus.events if e[2].get("sync_log_id") == failed.value.sync_log_id][-1][
        1
    ] == "sync.failed"

    bus.hooks.clear()
    onec.clear_faults()
    retry = sync_nomenclature(integration, publisher=bus)
    assert retry.status == "success" and retry.updated == 120


def test_postgres_connection_dropped_mid_sync(integration, onec, sql, bus):
    sync_nomenclature(integration, publisher=bus)
    onec.change_items(120)
    before = _snapshot(sql)
    name = application_name(INTEGRATION, "nomenclature")

    def kill_backend():
        sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n",
            n=name,
        )

    bus.on_page(1, kill_backend)
    with pytest.raises(SyncFailed) as failed:
        sync_nomenclature(integration, publisher=bus)

    assert "PostgreSQL connection" in failed.value.reason
    assert _snapshot(sql) == before
    log = sql("SELECT status, error FROM sync_logs WHERE id = :id", id=failed.value.sync_log_id)[0]
    assert log.status == "failed" and "PostgreSQL" in log.error

    bus.hooks.clear()
    assert sync_nomenclature(integration, publisher=bus).updated == 120


def test_events_are_published_after_commit(integration, onec, sql, bus, redis_client):
    def committed(data):
        # Called by the engine right before it publishes: the data must already be visible
        # from another connection.
        ids = data["onec_ids"]
        visible = sql(
            "SELECT count(*) FROM products WHERE onec_id::text = ANY(:ids) AND sync_version = :v",
            ids=ids,
            v=data["sync_version"],
        )[0][0]
        assert visible == len(ids)

    bus.hooks["product.updated"] = committed
    result = sync_nomenclature(integration, publisher=bus)

    batches = bus.of_type("product.updated")
    assert sum(len(b["onec_ids"]) for b in batches) == onec.items
    assert all(len(b["onec_ids"]) <= 500 for b in batches)
    kinds = [kind for _, kind, _ in bus.events]
    assert kinds[0] == "sync.started" and kinds[-1] == "sync.finished"
    last_progress = max(i for i, k in enumerate(kinds) if k == "sync.progress")
    assert kinds.index("product.updated") > last_progress
    progress = bus.of_type("sync.progress")
    rows = onec.items + onec.folders
    assert [p["processed"] for p in progress] == [*range(50, rows, 50), rows]
    assert progress[-1]["total"] == rows
    finished = bus.of_type("sync.finished")[0]
    assert finished["created"] == rows
    assert finished["sync_version"] == result.sync_version
    # They went through the real bus, under this test session's namespace.
    from tradeos_pipelines.event_bus import stream_key

    assert redis_client.xlen(stream_key("product_updates")) == len(batches)

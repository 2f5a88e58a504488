"""Product history and undo against the real emulator and PostgreSQL: which sync changed what,
and putting every product of an integration back to an earlier sync version."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg2
import pytest

from tradeos_pipelines.engine import sync_nomenclature
from tradeos_pipelines.engine.connection import libpq_dsn, try_lock
from tradeos_pipelines.engine.restore import (
    RestoreRefused,
    UnknownVersion,
    product_history,
    restore_integration,
)

# The OData side of the sync tests has no such control yet (docs/1c-odata.md).

PRICES = "SELECT onec_id::text, price FROM products"


def test_history_lists_each_change_of_a_product(integration, onec, session, sql, bus, no_overlap):
    first = sync_nomenclature(integration, publisher=bus)
    (item,) = onec.change_prices(1)
    before = dict(sql(PRICES))[item]
    second = sync_nomenclature(integration, publisher=bus)
    onec.change_price(item)
    third = sync_nomenclature(integration, publisher=bus)

    history = product_history(session, integration, uuid.UUID(item))
    assert history["onec_id"] == item
    assert history["created_sync_version"] == first.sync_version
    assert [(h["sync_version"], h["change"]) for h in history["data"]] == [
        (first.sync_version, "created"),
        (second.sync_version, "updated"),
        (third.sync_version, "updated"),
    ]
    assert history["data"][0]["sync_log_id"] == first.sync_log_id
    (price_change,) = history["data"][1]["changes"]
    assert price_change["field"] == "price"
    assert Decimal(str(price_change["from"])) == before
    assert history["data"][2]["changes"][0]["from"] == price_change["to"]
    assert Decimal(str(history["data"][2]["changes"][0]["to"])) == Decimal(
        str(history["values"]["price"])
    )


def test_dry_run_then_restore_puts_every_product_back(integration, onec, sql, bus, no_overlap):
    first = sync_nomenclature(integration, publisher=bus)
    at_first = dict(sql(PRICES))
    changed = onec.change_prices(3)
    sync_nomenclature(integration, publisher=bus)
    onec.change_price(changed[0])
    again = changed[:1]
    third = sync_nomenclature(integration, publisher=bus)
    now = dict(sql(PRICES))

    plan = restore_integration(integration, first.sync_version)
    assert (plan.applied, plan.changed, plan.unchanged, plan.created_after, plan.unknown) == (
        False,
        3,
        onec.items - 3,
        0,
        0,
    )
    assert {p["onec_id"] for p in plan.products} == set(changed)
    shown = {p["onec_id"]: p["changes"] for p in plan.products}
    assert [c["field"] for c in shown[again[0]]] == ["price"]
    assert Decimal(str(shown[again[0]][0]["from"])) == now[again[0]]
    assert Decimal(str(shown[again[0]][0]["to"])) == at_first[again[0]]
    assert dict(sql(PRICES)) == now  # a dry run writes nothing
    assert sql("SELECT count(*) FROM sync_logs")[0][0] == 3

    bus.events.clear()
    done = restore_integration(integration, first.sync_version, dry_run=False, publisher=bus)
    assert (done.applied, done.changed, done.unchanged) == (True, 3, onec.items - 3)
    assert done.sync_version > third.sync_version
    assert dict(sql(PRICES)) == at_first
    log = sql(
        "SELECT entity, run_id, status, sync_version, updated, unchanged FROM sync_logs "
        "WHERE id = :id",
        id=done.sync_log_id,
    )[0]
    assert tuple(log) == (
        "nomenclature",
        f"restore:{first.sync_version}",
        "success",
        done.sync_version,
        3,
        onec.items - 3,
    )
    restored = sql(
        "SELECT p.onec_id::text FROM product_history h JOIN products p ON p.id = h.product_id "
        "WHERE h.change = 'restored' AND h.sync_version = :v",
        v=done.sync_version,
    )
    assert {r[0] for r in restored} == set(changed)
    updated = bus.of_type("product.updated")
    assert [set(e["onec_ids"]) for e in updated] == [set(changed)]
    assert [e["status"] for e in bus.of_type("sync.finished")] == ["success"]

    # The restore is a TradeOS edit: the next sync keeps it while 1C leaves the fields alone.
    sync_nomenclature(integration, publisher=bus)
    assert dict(sql(PRICES)) == at_first
    assert restore_integration(integration, first.sync_version).changed == 0


def test_unknown_version_names_the_valid_ones(integration, bus, no_overlap, onec):
    first = sync_nomenclature(integration, publisher=bus)
    onec.change_prices(1)
    second = sync_nomenclature(integration, publisher=bus)
    with pytest.raises(UnknownVersion) as info:
        restore_integration(integration, 999_999)
    assert info.value.valid == [second.sync_version, first.sync_version]
    assert str(info.value) == (
        f"999999 is not a sync version of integration 'main-1c'; latest versions: "
        f"{second.sync_version}, {first.sync_version}"
    )


def test_restore_is_refused_while_a_sync_of_the_integration_runs(
    integration, bus, sql, db, no_overlap
):
    first = sync_nomenclature(integration, publisher=bus)
    # Hold the lock a running stock sync of this integration holds.
    holder = psycopg2.connect(libpq_dsn(db))
    holder.autocommit = True
    try:
        assert try_lock(holder, integration, "stock")
        with pytest.raises(
            RestoreRefused, match="a stock sync of integration 'main-1c' is running"
        ):
            restore_integration(integration, first.sync_version, dry_run=False)
        # Dry runs are allowed: they write nothing.
        assert restore_integration(integration, first.sync_version).changed == 0
    finally:
        holder.close()
    assert sql("SELECT count(*) FROM sync_logs")[0][0] == 1

"""Three-way conflicts (TradeOS edit vs 1C change), the policies, resolve, history, restore."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradeos_pipelines.engine import (
    ConflictNotOpen,
    VersionNotFound,
    resolve_conflict,
    restore_product_version,
    sync_nomenclature,
)


def _policy(sql, policy: str) -> None:
    sql("UPDATE integrations SET conflict_policy = :p", p=policy)


def _product(sql, onec_id: str):
    return sql(
        "SELECT id, name, price, local_modified_at, onec_values FROM products "
        "WHERE onec_id::text = :id",
        id=onec_id,
    )[0]


@pytest.fixture
def edited(integration, onec, sql, bus) -> dict:
    """A product whose price TradeOS edited and 1C changed since the last sync."""
    sync_nomenclature(integration, publisher=bus)
    onec_id = sql("SELECT onec_id::text FROM products WHERE is_active ORDER BY code LIMIT 1")[0][0]
    # A plain UPDATE, as the sidecar or an admin in psql would do: the trigger notices it.
    sql("UPDATE products SET price = 1.11 WHERE onec_id::text = :id", id=onec_id)
    assert _product(sql, onec_id).local_modified_at is not None
    onec.change_price(onec_id)
    return {"onec_id": onec_id}


def test_onec_wins_takes_1c_value_and_records_auto_conflict(edited, sql, bus):
    _policy(sql, "onec_wins")
    result = sync_nomenclature("main-1c", publisher=bus)

    product = _product(sql, edited["onec_id"])
    assert result.conflicts == 1
    assert product.price == Decimal(str(product.onec_values["price"]))
    assert product.price != Decimal("1.11") and product.local_modified_at is None
    conflict = sql("SELECT field, status, resolution, tradeos_value FROM sync_conflicts")[0]
    assert tuple(conflict) == ("price", "auto", "onec", 1.11)


def test_tradeos_wins_keeps_tradeos_value(edited, sql, bus):
    _policy(sql, "tradeos_wins")
    result = sync_nomenclature("main-1c", publisher=bus)

    product = _product(sql, edited["onec_id"])
    assert result.conflicts == 1 and product.price == Decimal("1.11")
    assert product.local_modified_at is not None  # still differs from 1C
    assert product.onec_values["price"] != 1.11  # the base moved to 1C's new value
    assert tuple(sql("SELECT status, resolution FROM sync_conflicts")[0]) == ("auto", "tradeos")


def test_manual_keeps_tradeos_value_until_a_person_resolves(edited, sql, bus):
    _policy(sql, "manual")
    sync_nomenclature("main-1c", publisher=bus)

    conflict = sql("SELECT id, status, onec_value FROM sync_conflicts")[0]
    assert conflict.status == "open"
    assert _product(sql, edited["onec_id"]).price == Decimal("1.11")

    # The next sync sees nothing new: the conflict stays one open row.
    sync_nomenclature("main-1c", publisher=bus)
    assert sql("SELECT count(*) FROM sync_conflicts")[0][0] == 1

    resolve_conflict(conflict.id, "onec")
    product = _product(sql, edited["onec_id"])
    assert product.price == Decimal(str(conflict.onec_value))
    assert product.local_modified_at is None  # equal to 1C again: not a TradeOS edit
    assert tuple(sql("SELECT status, resolution FROM sync_conflicts")[0]) == ("resolved", "onec")
    with pytest.raises(ConflictNotOpen):
        resolve_conflict(conflict.id, "tradeos")


def test_manual_resolved_for_tradeos_keeps_the_edit(edited, sql, bus):
    _policy(sql, "manual")
    sync_nomenclature("main-1c", publisher=bus)
    conflict_id = sql("SELECT id FROM sync_conflicts")[0][0]

    resolve_conflict(conflict_id, "tradeos")

    assert _product(sql, edited["onec_id"]).price == Decimal("1.11")
    assert tuple(sql("SELECT status, resolution FROM sync_conflicts")[0]) == (
        "resolved",
        "tradeos",
    )


def test_tradeos_edit_of_a_field_1c_did_not_change_is_kept_without_conflict(
    integration, onec, sql, bus
):
    sync_nomenclature(integration, publisher=bus)
    onec_id = sql("SELECT onec_id::text FROM products WHERE is_active ORDER BY code LIMIT 1")[0][0]
    sql("UPDATE products SET name = 'Новое имя' WHERE onec_id::text = :id", id=onec_id)
    onec.change_price(onec_id)  # 1C changes the price, not the name

    result = sync_nomenclature(integration, publisher=bus)

    product = _product(sql, onec_id)
    assert result.conflicts == 0 and result.updated == 1
    assert product.name == "Новое имя"
    assert product.price == Decimal(str(product.onec_values["price"]))
    assert product.local_modified_at is not None


def test_history_keeps_previous_values_and_restore_puts_them_back(integration, onec, sql, bus):
    first = sync_nomenclature(integration, publisher=bus)
    onec_id = sql("SELECT onec_id::text FROM products WHERE is_active ORDER BY code LIMIT 1")[0][0]
    original = _product(sql, onec_id)
    onec.change_price(onec_id)
    second = sync_nomenclature(integration, publisher=bus)
    changed = _product(sql, onec_id)
    assert changed.price != original.price

    history = sql(
        "SELECT change, previous->>'price' AS before, current->>'price' AS after "
        "FROM product_history WHERE product_id = :p AND sync_version = :v",
        p=original.id,
        v=second.sync_version,
    )[0]
    assert history.change == "updated"
    assert Decimal(history.before) == original.price and Decimal(history.after) == changed.price

    restore_product_version(original.id, first.sync_version)

    restored = _product(sql, onec_id)
    assert restored.price == original.price and restored.name == original.name
    assert restored.local_modified_at is not None  # a restore is a TradeOS edit
    with pytest.raises(VersionNotFound):
        restore_product_version(original.id, first.sync_version - 1)


def test_restore_to_the_creating_sync_without_a_later_change_takes_1c_values(
    integration, onec, sql, bus
):
    first = sync_nomenclature(integration, publisher=bus)
    onec_id = sql("SELECT onec_id::text FROM products WHERE is_active ORDER BY code LIMIT 1")[0][0]
    original = _product(sql, onec_id)
    sql("UPDATE products SET name = 'Правка TradeOS' WHERE id = :p", p=original.id)
    later = sync_nomenclature(integration, publisher=bus)  # reads nothing new for this product

    restore_product_version(original.id, later.sync_version)

    restored = _product(sql, onec_id)
    assert restored.name == original.name and restored.price == original.price
    assert (
        sql("SELECT count(*) FROM product_history WHERE product_id = :p", p=original.id)[0][0] == 0
    )
    with pytest.raises(VersionNotFound):
        restore_product_version(original.id, first.sync_version - 1)

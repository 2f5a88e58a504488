"""The registers, kept as columns of numbers that refer to goods by creation number.

A register of a million goods has millions of records; as dicts they would take gigabytes,
as :mod:`array` columns they take tens of megabytes. A record becomes JSON only when served.
Goods are referred to by their ordinal in :class:`~.stores.ObjectStore` (stable, unlike a
position in the sorted list), and the rows of each register are kept sorted by it, so the
records of one good are found by bisection.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import Any

from tradeos_pipelines.emulators.odata.query import Filter, Predicate, Row
from tradeos_pipelines.emulators.odata.schema import (
    STOCK_DIMENSIONS,
    STOCK_RESOURCES,
    ZERO_GUID,
    EntityType,
)
from tradeos_pipelines.emulators.odata.stores import (
    Listed,
    ObjectStore,
    Records,
    number,
    ordinal_range,
)

WAREHOUSE_BITS = 8  # a stock slot is ordinal << 8 | warehouse


def _ordinals(goods: ObjectStore, keys: Iterable[str]) -> list[int]:
    return sorted({o for o in map(goods.ordinal, keys) if o is not None})


def _goods_ordinals(goods: ObjectStore, condition: Filter) -> list[int] | None:
    """The goods a condition's ``Номенклатура_Key`` list or range allows (None: any)."""
    keys = (condition.hints or {}).get("Номенклатура_Key")
    if keys is not None:
        return _ordinals(goods, keys)
    bounds = condition.ranges.get("Номенклатура_Key")
    return goods.ordinals_between(bounds) if bounds is not None else None


def _remaining(condition: Filter | None, narrowed: set[str]) -> Predicate | None:
    """The check still needed after a table narrowed itself by the condition's key lists."""
    if condition is None:
        return None
    if condition.exact and condition.hints is not None and set(condition.hints) <= narrowed:
        return None
    return condition.predicate


class BarcodeRegister:
    """``InformationRegister_ШтрихкодыУпаковокТоваров``: EAN-13 codes of goods."""

    def __init__(self, goods: ObjectStore) -> None:
        self.goods = goods
        self.ordinals: array[int] = array("i")
        self.codes: array[int] = array("q")

    def add(self, ordinal: int, code: int) -> None:
        """Append a barcode; goods get theirs in creation order, so the column stays sorted."""
        self.ordinals.append(ordinal)
        self.codes.append(code)

    def record(self, index: int) -> dict[str, Any]:
        """Record ``index`` as 1C writes it."""
        return {
            "Штрихкод": f"{self.codes[index]:013d}",
            "Номенклатура_Key": self.goods.key_of(self.ordinals[index]),
            "Характеристика_Key": ZERO_GUID,
            "Упаковка_Key": ZERO_GUID,
        }

    def table(self, entity: EntityType) -> Records:
        """The register's entity set; the records of a list or a key range of goods are
        looked up by bisection."""

        def lookup(condition: Filter) -> list[int] | None:
            ordinals = _goods_ordinals(self.goods, condition)
            if ordinals is None:
                return None
            found: list[int] = []
            for ordinal in ordinals:
                low = bisect_left(self.ordinals, ordinal)
                found.extend(range(low, bisect_right(self.ordinals, ordinal)))
            return found

        return Records(entity, (entity.name,), lambda: len(self.codes), self.record, lookup)


class PriceRegister:
    """``InformationRegister_ЦеныНоменклатуры25``: prices set by recorder documents.

    Records are appended recorder by recorder with non-decreasing periods (the emulator
    only sets prices "now"), so the latest price of a good is simply its last record; that
    is kept in one ``latest`` column per price type for ``SliceLast()`` without a period.
    """

    def __init__(
        self, name: str, goods: ObjectStore, price_types: list[str], currency: str
    ) -> None:
        self.name = name
        self.goods = goods
        self.price_types = price_types
        self.currency = currency
        self.recorders: list[str] = []
        self.periods: list[str] = []
        self.starts: array[int] = array("i")  # first record of each recorder
        self.recorder: array[int] = array("i")
        self.kind: array[int] = array("b")
        self.ordinal: array[int] = array("i")
        self.price: array[float] = array("d")
        self.latest = [array("i") for _ in price_types]
        self._slices: dict[tuple[Any, ...], list[array[int]]] = {}

    def __len__(self) -> int:
        return len(self.price)

    def record(self, recorder: str, period: str, records: Iterable[tuple[int, int, float]]) -> None:
        """Write one recorder's records: ``(price type index, goods ordinal, price)``."""
        if self.periods and period < self.periods[-1]:
            raise ValueError("prices are recorded in time order")
        number_ = len(self.recorders)
        self.recorders.append(recorder)
        self.periods.append(period)
        self.starts.append(len(self.price))
        for latest in self.latest:  # goods are created before their prices
            latest.extend(array("i", [-1]) * (self.goods.ordinals - len(latest)))
        for kind, ordinal, price in records:
            self.latest[kind][ordinal] = len(self.price)
            self.recorder.append(number_)
            self.kind.append(kind)
            self.ordinal.append(ordinal)
            self.price.append(price)
        self._slices.clear()

    def row(self, index: int) -> dict[str, Any]:
        """Record ``index`` as 1C writes it (``LineNumber`` within its recorder)."""
        recorder = self.recorder[index]
        return {
            "Recorder_Key": self.recorders[recorder],
            "Period": self.periods[recorder],
            "LineNumber": str(index - self.starts[recorder] + 1),
            "Active": True,
            "ВидЦены_Key": self.price_types[self.kind[index]],
            "Номенклатура_Key": self.goods.key_of(self.ordinal[index]),
            "Характеристика_Key": ZERO_GUID,
            "Цена": number(self.price[index]),
            "Упаковка_Key": ZERO_GUID,
            "Валюта_Key": self.currency,
        }

    def _end_of(self, recorder: int) -> int:
        return self.starts[recorder + 1] if recorder + 1 < len(self.starts) else len(self.price)

    def records_table(self, entity: EntityType) -> Records:
        """``…_RecordType``: every record, recorder by recorder."""

        def lookup(condition: Filter) -> list[int] | None:
            keys = (condition.hints or {}).get("Recorder_Key")
            if keys is None:
                return None
            found: list[int] = []
            for number_, recorder in enumerate(self.recorders):
                if recorder in keys:
                    found.extend(range(self.starts[number_], self._end_of(number_)))
            return found

        return Records(entity, (entity.name,), lambda: len(self.price), self.row, lookup)

    def record_sets_table(self, entity: EntityType) -> Records:
        """The register itself: one record set (all records) per recorder."""

        def record_set(number_: int) -> dict[str, Any]:
            rows = [self.row(i) for i in range(self.starts[number_], self._end_of(number_))]
            return {"Recorder_Key": self.recorders[number_], "RecordSet": rows}

        def lookup(condition: Filter) -> list[int] | None:
            keys = (condition.hints or {}).get("Recorder_Key")
            if keys is None:
                return None
            return [i for i, recorder in enumerate(self.recorders) if recorder in keys]

        return Records(entity, (entity.name,), lambda: len(self.recorders), record_set, lookup)

    def _chosen(self, first: bool, period: str | None) -> list[array[int]]:
        """Per price type and goods ordinal, the record a slice takes (-1: none)."""
        if not first and period is None:
            return self.latest
        cached = self._slices.get((first, period))
        if cached is not None:
            return cached
        chosen = [array("i", [-1]) * self.goods.ordinals for _ in self.price_types]
        if first:
            begin = bisect_left(self.periods, period) if period is not None else 0
            start = self.starts[begin] if begin < len(self.starts) else len(self.price)
            for index in range(start, len(self.price)):
                if chosen[self.kind[index]][self.ordinal[index]] < 0:
                    chosen[self.kind[index]][self.ordinal[index]] = index
        else:
            end = bisect_right(self.periods, period)
            for index in range(self.starts[end] if end < len(self.starts) else len(self.price)):
                chosen[self.kind[index]][self.ordinal[index]] = index
        self._slices[(first, period)] = chosen
        return chosen

    def slice_table(
        self, entity: EntityType, *, first: bool, period: str | None, condition: Filter | None
    ) -> Records:
        """``SliceLast``/``SliceFirst``: one record per price type and good, type by type.

        The condition's key lists (``ВидЦены_Key eq guid'…'``) narrow what is walked; a
        condition that says more is then checked on every record.
        """
        chosen = self._chosen(first, period)
        kinds = list(range(len(self.price_types)))
        ordinals: list[int] | None = None
        hints = condition.hints if condition is not None else None
        if hints and "ВидЦены_Key" in hints:
            kinds = [k for k in kinds if self.price_types[k] in hints["ВидЦены_Key"]]
        if condition is not None:
            ordinals = _goods_ordinals(self.goods, condition)
        predicate = _remaining(condition, {"ВидЦены_Key", "Номенклатура_Key"})

        def width() -> int:
            return len(ordinals) if ordinals is not None else self.goods.ordinals

        def chosen_record(position: int) -> int:
            span = width()
            kind, offset = kinds[position // span], position % span
            ordinal = ordinals[offset] if ordinals is not None else offset
            column = chosen[kind]
            return column[ordinal] if ordinal < len(column) else -1

        def make(position: int) -> dict[str, Any] | None:
            index = chosen_record(position)
            if index < 0:
                return None
            row = self.row(index)
            return row if predicate is None or predicate(Row(data=row)) else None

        key = (entity.name, "first" if first else "last", period, condition and condition.text)
        present = (lambda position: chosen_record(position) >= 0) if predicate is None else None
        size = lambda: len(kinds) * width()  # noqa: E731 (goods may be added while paging)
        return Records(entity, key, size, make, dense=False, present=present)


class StockRegister:
    """``AccumulationRegister_СвободныеОстатки``: current balances by good and warehouse.

    Only balances are kept (not movements): the emulator serves the ``Balance`` virtual
    table, which is what integrations read.
    """

    def __init__(self, goods: ObjectStore, warehouses: list[str]) -> None:
        self.goods = goods
        self.warehouses = warehouses
        self.slots: array[int] = array("q")
        self.values = [array("d") for _ in STOCK_RESOURCES]

    def __len__(self) -> int:
        return len(self.slots)

    def set(self, ordinal: int, warehouse: int, values: tuple[float, float, float]) -> None:
        """Set a good's balance in a warehouse (insert or replace)."""
        slot = ordinal << WAREHOUSE_BITS | warehouse
        index = bisect_left(self.slots, slot)
        if index < len(self.slots) and self.slots[index] == slot:
            for column, value in zip(self.values, values, strict=True):
                column[index] = value
            return
        self.slots.insert(index, slot)
        for column, value in zip(self.values, values, strict=True):
            column.insert(index, value)

    def raw(self, index: int) -> dict[str, Any]:
        """One balance row with every dimension (for controls and tests)."""
        slot = self.slots[index]
        row: dict[str, Any] = {
            "Номенклатура_Key": self.goods.key_of(slot >> WAREHOUSE_BITS),
            "Характеристика_Key": ZERO_GUID,
            "Склад_Key": self.warehouses[slot & ((1 << WAREHOUSE_BITS) - 1)],
        }
        for name, column in zip(STOCK_RESOURCES, self.values, strict=True):
            row[name] = number(column[index])
        return row

    def balance_table(
        self, entity: EntityType, dimensions: tuple[str, ...], condition: Filter | None
    ) -> Records | Listed:
        """``Balance(Dimensions=…, Condition=…)``: non-zero balances grouped by the dimensions.

        Rows are sorted by good, so grouping by a set of dimensions that includes the good
        streams; grouping without the good is computed whole (it has a handful of rows). The
        condition's key lists (goods, warehouses) are checked on the columns; only a
        condition that says more makes a row dict to test.
        """
        hints = condition.hints if condition is not None else None
        predicate = _remaining(condition, {"Номенклатура_Key", "Склад_Key", "Характеристика_Key"})
        positions: list[int] | None = None
        if hints and "Номенклатура_Key" in hints:
            positions = []
            for ordinal in _ordinals(self.goods, hints["Номенклатура_Key"]):
                positions.extend(ordinal_range(self.slots, ordinal, WAREHOUSE_BITS))
        if hints and ZERO_GUID not in hints.get("Характеристика_Key", {ZERO_GUID}):
            positions = []  # no good here has a characteristic
        warehouses: set[int] | None = None
        if hints and "Склад_Key" in hints:
            warehouses = {i for i, key in enumerate(self.warehouses) if key in hints["Склад_Key"]}
        mask = (1 << WAREHOUSE_BITS) - 1

        def index_of(position: int) -> int:
            return positions[position] if positions is not None else position

        def size() -> int:
            return len(positions) if positions is not None else len(self.slots)

        def accepted(index: int) -> bool:
            if warehouses is not None and self.slots[index] & mask not in warehouses:
                return False
            return predicate is None or predicate(Row(data=self.raw(index)))

        def totals(indices: list[int]) -> list[float]:
            return [sum(column[i] for i in indices) for column in self.values]

        def output(indices: list[int]) -> dict[str, Any] | None:
            sums = totals(indices)
            if not any(sums):
                return None
            first = self.raw(indices[0])
            out = {f"{d}_Key": first[f"{d}_Key"] for d in STOCK_DIMENSIONS if d in dimensions}
            for name, total in zip(STOCK_RESOURCES, sums, strict=True):
                out[f"{name}Balance"] = number(total)
            return out

        if "Номенклатура" not in dimensions:
            groups: dict[tuple[int, ...], list[int]] = {}
            for position in range(size()):
                index = index_of(position)
                if accepted(index):
                    key = (self.slots[index] & mask,) if "Склад" in dimensions else ()
                    groups.setdefault(key, []).append(index)
            return Listed(entity, [r for r in map(output, groups.values()) if r is not None])

        def members(position: int) -> list[int]:
            """The accepted rows a result row at ``position`` sums (none: not its first row)."""
            index = index_of(position)
            if "Склад" in dimensions:
                return [index] if accepted(index) else []
            ordinal = self.slots[index] >> WAREHOUSE_BITS
            if position > 0 and self.slots[index_of(position - 1)] >> WAREHOUSE_BITS == ordinal:
                return []  # the good's row was made at its first warehouse
            group = []
            following = position
            while following < size():
                other = index_of(following)
                if self.slots[other] >> WAREHOUSE_BITS != ordinal:
                    break
                if accepted(other):
                    group.append(other)
                following += 1
            return group

        def make(position: int) -> dict[str, Any] | None:
            group = members(position)
            return output(group) if group else None

        on_hand, from_stock, to_order = self.values

        def present(position: int) -> bool:
            if "Склад" in dimensions:  # one stored row: read its columns, make no lists
                index = index_of(position)
                nonzero = on_hand[index] or from_stock[index] or to_order[index]
                return bool(nonzero) and accepted(index)
            group = members(position)
            return bool(group) and any(totals(group))

        key = (entity.name, dimensions, condition and condition.text)
        return Records(
            entity, key, size, make, dense=False, present=present if predicate is None else None
        )

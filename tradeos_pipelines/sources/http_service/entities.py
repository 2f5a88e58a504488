"""The parsers of each entity of the HTTP service: goods and folders, stock rows, orders."""

from __future__ import annotations

import operator
from decimal import Decimal
from itertools import chain, repeat
from operator import attrgetter
from typing import Any

from msgspec.structs import force_setattr as _force

from tradeos_pipelines.sources.common.rows import (
    NomenclatureItem,
    OneCOrder,
    StockRow,
)
from tradeos_pipelines.sources.common.values import (
    ZERO_GUID,
    RowError,
    flag,
    parse_decimal,
    parse_guid,
    short,
    text,
)
from tradeos_pipelines.sources.http_service.parsing import RowParser, must_be_object

_NAME, _PRICE, _BARCODES = attrgetter("name"), attrgetter("price"), attrgetter("barcodes")
_AMOUNTS = attrgetter("quantity", "reserved", "available")
_ZERO_GUID_BYTES = ZERO_GUID.encode()


class NomenclatureParser(RowParser):
    entity = "nomenclature"
    model = NomenclatureItem
    id_field = "id"
    typed = True
    numbers = ("price",)
    dates = ("modified_at",)

    def settle(self, rows: list[NomenclatureItem], body: bytes) -> bool:
        names = list(map(_NAME, rows))
        if (None in names or "" in names or any(map(str.isspace, names))) and [
            row for row in rows if not (row.is_folder or (row.name and not row.name.isspace()))
        ]:
            return False  # an item (not a folder) without a name
        # Only strings decode to a non-finite Decimal ("NaN"); filter(None) skips None and 0.
        if not all(map(Decimal.is_finite, filter(None, map(_PRICE, rows)))):
            return False
        if any(map(operator.contains, map(_BARCODES, rows), repeat(""))):
            return False  # the careful path drops empty barcodes
        if _ZERO_GUID_BYTES in body:
            if [row for row in rows if not row.id.int]:
                return False
            for row in [row for row in rows if row.group_id is not None and not row.group_id.int]:
                _force(row, "group_id", None)  # the zero GUID: no parent group
        self._zone(rows)
        return True

    def careful(self, raw: Any) -> NomenclatureItem:
        raw = must_be_object(raw)
        item_id = self._required_guid(raw, "id")
        is_folder = self._field(raw, "is_folder", flag)
        name = self._field(raw, "name", text)
        if not is_folder and not (name or "").strip():
            raise RowError("name", "missing (required for an item that is not a folder)")
        barcodes = raw.get("barcodes")
        if barcodes is None:
            barcodes = []
        if not isinstance(barcodes, list):
            raise RowError("barcodes", f"expected a list, got {short(repr(barcodes))}")
        try:
            codes = tuple(text(b) for b in barcodes if b not in (None, ""))
        except ValueError as exc:
            raise RowError("barcodes", str(exc)) from None
        return NomenclatureItem(
            id=item_id,
            code=self._field(raw, "code", text),
            article=self._field(raw, "article", text),
            name=name,
            full_name=self._field(raw, "full_name", text),
            unit=self._field(raw, "unit", text),
            group_id=self._field(raw, "group_id", parse_guid),
            is_folder=is_folder,
            barcodes=codes,
            price=self._field(raw, "price", parse_decimal),
            vat=self._field(raw, "vat", text),
            deleted=self._field(raw, "deleted", flag),
            version=self._field(raw, "version", text),
            modified_at=self._when(raw, "modified_at"),
        )


class StockParser(RowParser):
    entity = "stock"
    model = StockRow
    id_field = "product_id"
    typed = True
    numbers = ("quantity", "reserved", "available")
    dates = ("modified_at",)

    def settle(self, rows: list[StockRow], body: bytes) -> bool:
        if _ZERO_GUID_BYTES in body and [
            row for row in rows if not (row.product_id.int and row.warehouse_id.int)
        ]:
            return False
        if not all(map(Decimal.is_finite, chain.from_iterable(map(_AMOUNTS, rows)))):
            return False
        self._zone(rows)
        return True

    def careful(self, raw: Any) -> StockRow:
        raw = must_be_object(raw)
        quantity = self._required_number(raw, "quantity")
        reserved = self._field(raw, "reserved", parse_decimal) or Decimal(0)
        available = self._field(raw, "available", parse_decimal)
        return StockRow(
            product_id=self._required_guid(raw, "product_id"),
            warehouse_id=self._required_guid(raw, "warehouse_id"),
            warehouse_name=self._field(raw, "warehouse_name", text),
            quantity=quantity,
            reserved=reserved,
            # Older publications omit it; it is what is left after reservations.
            available=quantity - reserved if available is None else available,
            modified_at=self._when(raw, "modified_at"),
        )


class OrderParser(RowParser):
    """Orders are few per page; the careful path alone is fast enough."""

    entity = "orders"
    model = OneCOrder
    id_field = "id"

    def careful(self, raw: Any) -> OneCOrder:
        raw = must_be_object(raw)
        number = self._field(raw, "number", text)
        if not number:
            raise RowError("number", "missing")
        status = self._field(raw, "status", text)
        if not status:
            raise RowError("status", "missing")
        return OneCOrder(
            id=self._required_guid(raw, "id"),
            number=number,
            external_id=self._field(raw, "external_id", parse_guid),
            status=status,
            date=self._when(raw, "date"),
            total=self._field(raw, "total", parse_decimal),
            modified_at=self._when(raw, "modified_at"),
        )


PARSERS: dict[str, type[RowParser]] = {
    "nomenclature": NomenclatureParser,
    "stock": StockParser,
    "orders": OrderParser,
}


# ----- whole bodies -------------------------------------------------------------------------

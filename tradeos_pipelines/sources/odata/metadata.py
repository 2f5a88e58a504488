"""What TradeOS needs from a 1C's standard OData interface, and ``$metadata`` checked against it.

``$metadata`` is XML only and large on a real УТ (tens of MB, tens of seconds), so it is read
once per integration and reduced to a small summary: which entity sets are published and
which properties each type has. The summary is kept in Redis (shared by the sidecar and every
Dagster run) and in the process, for :data:`METADATA_TTL_SECONDS`.

Before a read, :meth:`Schema.missing` says which required objects are not published and which
fields 1C does not declare, so a sync fails with a message naming them instead of a 400 in the
middle of a pass.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import orjson

METADATA_TTL_SECONDS = 3600

GOODS = "Catalog_Номенклатура"
UNITS = "Catalog_УпаковкиЕдиницыИзмерения"
VAT_RATES = "Catalog_СтавкиНДС"
WAREHOUSES = "Catalog_Склады"
PRICE_TYPES = "Catalog_ВидыЦен"
CUSTOMERS = "Catalog_Контрагенты"
BARCODES = "InformationRegister_ШтрихкодыУпаковокТоваров"
STOCK = "AccumulationRegister_СвободныеОстатки"
STOCK_BALANCE = f"{STOCK}_Balance"
ORDERS = "Document_ЗаказКлиента"
ORDER_LINES = f"{ORDERS}_Товары"

GOODS_FIELDS = (
    "Ref_Key",
    "DataVersion",
    "DeletionMark",
    "Parent_Key",
    "IsFolder",
    "Code",
    "Description",
    "Артикул",
    "НаименованиеПолное",
    "ЕдиницаИзмерения_Key",
    "СтавкаНДС_Key",
)
NAMED_FIELDS = ("Ref_Key", "Description")
BARCODE_FIELDS = ("Штрихкод", "Номенклатура_Key")
PRICE_FIELDS = ("Period", "ВидЦены_Key", "Номенклатура_Key", "Цена")
BALANCE_FIELDS = (
    "Номенклатура_Key",
    "Склад_Key",
    "ВНаличииBalance",
    "ВРезервеСоСкладаBalance",
    "ВРезервеПодЗаказBalance",
)
ORDER_FIELDS = (
    "Ref_Key",
    "Number",
    "Date",
    "Posted",
    "DeletionMark",
    "Статус",
    "СуммаДокумента",
    "НомерПоДаннымКлиента",
)
ORDER_WRITE_FIELDS = ("Комментарий", "Контрагент_Key", "Склад_Key", "Товары")
ORDER_LINE_FIELDS = ("LineNumber", "Номенклатура_Key", "Количество", "Цена", "Сумма")
CUSTOMER_FIELDS = ("Ref_Key", "Description", "ИНН")


def price_register(version: str) -> str:
    """The price register's entity set for УТ ``11.5`` (…25) or ``11.4``."""
    names = {"11.5": "ЦеныНоменклатуры25", "11.4": "ЦеныНоменклатуры"}
    if version not in names:
        raise ValueError(f"price_register must be 11.5 or 11.4, got {version!r}")
    return f"InformationRegister_{names[version]}"


@dataclass(frozen=True)
class Need:
    """One object TradeOS reads or writes: the published set, the type whose fields it
    needs (a virtual table's result type differs from the set), and what it is for."""

    entity_set: str
    type_name: str
    fields: tuple[str, ...]
    purpose: str


def needs(entity: str, prices: str | None) -> list[Need]:
    """What reading ``entity`` (``nomenclature``/``stock``/``orders``/``order_export``)
    requires; ``prices`` is the price register's set when a price type is configured."""
    if entity == "nomenclature":
        found = [
            Need(GOODS, GOODS, GOODS_FIELDS, "goods and folders"),
            Need(UNITS, UNITS, NAMED_FIELDS, "units of goods"),
            Need(VAT_RATES, VAT_RATES, NAMED_FIELDS, "VAT rates of goods"),
            Need(BARCODES, BARCODES, BARCODE_FIELDS, "barcodes"),
        ]
        if prices is not None:
            found.append(Need(prices, f"{prices}_RecordType", PRICE_FIELDS, "prices"))
        return found
    if entity == "stock":
        return [
            Need(STOCK, STOCK_BALANCE, BALANCE_FIELDS, "free stock (Balance)"),
            Need(WAREHOUSES, WAREHOUSES, NAMED_FIELDS, "warehouse names"),
        ]
    if entity == "orders":
        return [Need(ORDERS, ORDERS, ORDER_FIELDS, "customer orders and their statuses")]
    if entity == "order_export":
        return [
            Need(ORDERS, ORDERS, ORDER_FIELDS + ORDER_WRITE_FIELDS, "creating customer orders"),
            Need(ORDER_LINES, ORDER_LINES, ORDER_LINE_FIELDS, "order lines (Товары)"),
            Need(CUSTOMERS, CUSTOMERS, CUSTOMER_FIELDS, "the order's counterparty"),
        ]
    raise ValueError(f"unknown entity {entity!r}")


@dataclass(frozen=True)
class Missing:
    """A need 1C does not meet: the set is not published, or fields are not declared."""

    need: Need
    fields: tuple[str, ...]  # empty: the entity set itself is not published

    def describe(self) -> str:
        if not self.fields:
            return f"{self.need.entity_set} ({self.need.purpose}) is not published"
        return (
            f"{self.need.type_name} ({self.need.purpose}) has no field "
            f"{', '.join(self.fields)} in $metadata"
        )


@dataclass(frozen=True)
class Schema:
    """The summary of a ``$metadata`` document: entity sets and each type's properties."""

    entity_sets: frozenset[str]
    types: dict[str, tuple[str, ...]]

    def missing(self, wanted: list[Need]) -> list[Missing]:
        """The needs this publication does not meet, in order."""
        found = []
        for need in wanted:
            if need.entity_set not in self.entity_sets:
                found.append(Missing(need, ()))
                continue
            declared = set(self.types.get(need.type_name, ()))
            absent = tuple(f for f in need.fields if f not in declared)
            if absent:
                found.append(Missing(need, absent))
        return found

    def to_json(self) -> bytes:
        return orjson.dumps({"entity_sets": sorted(self.entity_sets), "types": self.types})

    @classmethod
    def from_json(cls, data: bytes) -> Schema:
        raw = orjson.loads(data)
        return cls(frozenset(raw["entity_sets"]), {k: tuple(v) for k, v in raw["types"].items()})


def parse_metadata(body: bytes) -> Schema:
    """The summary of an EDMX document; ``ValueError`` when it is not one."""
    entity_sets: set[str] = set()
    types: dict[str, tuple[str, ...]] = {}
    current: list[str] | None = None
    name = ""
    seen_edmx = False
    try:
        for event, element in ET.iterparse(_Reader(body), events=("start", "end")):
            tag = element.tag.rsplit("}", 1)[-1]
            if event == "start":
                if tag == "Edmx":
                    seen_edmx = True
                elif tag in ("EntityType", "ComplexType"):
                    current, name = [], element.get("Name", "")
                elif tag == "Property" and current is not None:
                    current.append(element.get("Name", ""))
                elif tag == "EntitySet":
                    entity_sets.add(element.get("Name", ""))
                continue
            if tag in ("EntityType", "ComplexType") and current is not None:
                types[name] = tuple(current)
                current = None
            element.clear()  # a real УТ document is tens of MB: keep only the summary
    except ET.ParseError as exc:
        raise ValueError(f"$metadata is not XML ({exc})") from None
    if not seen_edmx:
        raise ValueError("$metadata is not an EDMX document")
    return Schema(frozenset(entity_sets), types)


class _Reader:
    """A file-like view of bytes for ``iterparse`` (it reads in chunks)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._position + size
        chunk = bytes(self._data[self._position : end])
        self._position += len(chunk)
        return chunk


# In-process copies: (integration id, base URL) -> (expires at, schema).
_LOCAL: dict[tuple[str, str], tuple[float, Schema]] = {}


def local_schema(integration_id: str, base_url: str) -> Schema | None:
    """The process's copy of an integration's schema, if fresh."""
    entry = _LOCAL.get((integration_id, base_url))
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def keep_local(integration_id: str, base_url: str, schema: Schema) -> None:
    _LOCAL[(integration_id, base_url)] = (time.monotonic() + METADATA_TTL_SECONDS, schema)


def forget_local(integration_id: str) -> None:
    """Drop the process's copies of an integration's schema (a connection test re-reads it)."""
    for key in [k for k in _LOCAL if k[0] == integration_id]:
        del _LOCAL[key]

"""A deterministic УТ 11.5 infobase: the same seed and size give the same data, byte for byte.

Goods come with folders (a two-level hierarchy), about 2 % carry a deletion mark, most have
one or two EAN-13 barcodes, two price types with a price change the day before, free stock
in some warehouses, and a history of customer orders. References look like 1C's: random
time fields and one node part per infobase.
"""

from __future__ import annotations

import base64
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from tradeos_pipelines.emulators.odata.query import format_datetime
from tradeos_pipelines.emulators.odata.registers import WAREHOUSE_BITS
from tradeos_pipelines.emulators.odata.schema import ORDER_STATUSES, ZERO_GUID
from tradeos_pipelines.emulators.odata.stores import KEY_END, KEY_PREFIX, serialise

# The catalogue was "last edited" at this moment (server local time).
BASE = datetime(2025, 6, 2, 9, 0, 0)

CATEGORIES = (
    "Спецодежда", "Инструмент", "Крепёж", "Электротовары", "Сантехника",
    "Лакокрасочные материалы", "Хозтовары", "Канцтовары", "Бытовая химия",
    "Садовый инвентарь", "Освещение", "Упаковка",
)  # fmt: skip
# (noun, unit): the unit a 1C catalogue would give that kind of goods.
GOODS = (
    ("Перчатки рабочие", "пар"), ("Саморез по дереву", "шт"), ("Дрель ударная", "шт"),
    ("Кабель силовой ВВГнг", "м"), ("Смеситель для кухни", "шт"), ("Краска фасадная", "кг"),
    ("Ведро оцинкованное", "шт"), ("Ручка шариковая", "шт"), ("Средство моющее", "л"),
    ("Лопата штыковая", "шт"), ("Лампа светодиодная", "шт"), ("Коробка картонная", "упак"),
    ("Молоток слесарный", "шт"), ("Болт с шестигранной головкой", "шт"),
    ("Удлинитель сетевой", "шт"), ("Костюм рабочий", "шт"),
)  # fmt: skip
BRANDS = ("Профи", "Мастер", "Эконом", "Стандарт", "Титан", "Уют", "Север", "Гранит")
# (short name, OKEI code, full name)
UNITS = (
    ("шт", "796", "Штука"), ("кг", "166", "Килограмм"), ("м", "006", "Метр"),
    ("л", "112", "Литр"), ("упак", "778", "Упаковка"), ("пар", "715", "Пара"),
)  # fmt: skip
VAT_RATES = (("20%", 20.0), ("10%", 10.0), ("Без НДС", 0.0), ("0%", 0.0))
VAT_WEIGHTS = (0,) * 16 + (1,) * 3 + (2,)
WAREHOUSES = (
    "Основной склад", "Склад Москва (Южный порт)", "Склад Санкт-Петербург",
    "Склад Екатеринбург", "Склад Новосибирск", "Розничный магазин №1", "Склад Казань",
    "Склад Краснодар",
)  # fmt: skip
PRICE_TYPES = ("Розничная", "Оптовая")
WHOLESALE_FACTOR = 0.85
GOODS_KINDS = (("Товар", "Товар"), ("Услуга", "Услуга"), ("Спецодежда", "Товар"))
CUSTOMERS = (
    ("ООО «Ромашка»", "7701234567"), ("ИП Иванов Иван Иванович", "772812345678"),
    ("АО «СтройТрест»", "7811111111"), ("ООО «Вектор»", "5402222222"),
    ("ООО «Северная звезда»", "6603333333"),
)  # fmt: skip


@lru_cache(maxsize=1024)  # objects are written a few times each: few distinct values
def data_version(revision: int) -> str:
    """1C's ``DataVersion``: a write counter, eight bytes in base64 (``AAAAAAAAAAE=``)."""
    return base64.b64encode(revision.to_bytes(8, "big")).decode()


def revision(version: str) -> int:
    """How many writes a ``DataVersion`` counts."""
    return int.from_bytes(base64.b64decode(version), "big")


def next_version(version: str) -> str:
    """The ``DataVersion`` after one more write."""
    return data_version(revision(version) + 1)


class RefMaker:
    """1C-looking references: random time fields, a version-1 nibble, the base's node."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.node = f"{rng.getrandbits(48):012x}"

    def __call__(self) -> str:
        bits = self.rng.getrandbits(74)
        low, mid, high, clock = bits >> 42, (bits >> 26) & 0xFFFF, (bits >> 14) & 0xFFF, bits
        return f"{low:08x}-{mid:04x}-1{high:03x}-{0x8000 | (clock & 0x3FFF):04x}-{self.node}"


def ean13(rng: random.Random) -> int:
    """A Russian EAN-13 (prefix 460) with a correct check digit, as an integer."""
    body = 460_000_000_000 + int(rng.random() * 1_000_000_000)
    digits = str(body)
    total = sum(map(int, digits[0::2])) + 3 * sum(map(int, digits[1::2]))
    return body * 10 + (10 - total % 10) % 10


def pick(rng: random.Random, choices: tuple[Any, ...] | list[Any]) -> Any:
    """A random element (cheaper than ``rng.choice`` over a million rows)."""
    return choices[int(rng.random() * len(choices))]


def catalog_row(
    ref: str, revision: int, code: str, description: str, **extra: Any
) -> dict[str, Any]:
    """A simple catalog item in the order its type declares its properties."""
    return {
        "Ref_Key": ref,
        "DataVersion": data_version(revision),
        "DeletionMark": False,
        "Code": code,
        "Description": description,
        **extra,
        "Predefined": False,
        "PredefinedDataName": "",
    }


def goods_row(
    ref: str,
    revision: int,
    *,
    parent: str,
    folder: bool,
    code: str,
    description: str,
    article: str = "",
    full_name: str = "",
    unit: str = ZERO_GUID,
    vat: str = ZERO_GUID,
    kind: str = ZERO_GUID,
    deleted: bool = False,
) -> dict[str, Any]:
    """A ``Catalog_Номенклатура`` item or folder in declared property order."""
    return {
        "Ref_Key": ref,
        "DataVersion": data_version(revision),
        "DeletionMark": deleted,
        "Parent_Key": parent,
        "IsFolder": folder,
        "Code": code,
        "Description": description,
        "Артикул": article,
        "НаименованиеПолное": full_name,
        "ЕдиницаИзмерения_Key": unit,
        "СтавкаНДС_Key": vat,
        "ВидНоменклатуры_Key": kind,
        "Predefined": False,
        "PredefinedDataName": "",
    }


@dataclass
class PriceDocument:
    """A price-setting document (УстановкаЦенНоменклатуры) and its records, in columns."""

    recorder: str
    period: str
    kinds: array[int] = field(default_factory=lambda: array("b"))  # price type index
    goods: array[int] = field(default_factory=lambda: array("i"))  # ordinal
    prices: array[float] = field(default_factory=lambda: array("d"))

    def add(self, kind: int, ordinal: int, price: float) -> None:
        """Append a record: price type index, goods ordinal, price."""
        self.kinds.append(kind)
        self.goods.append(ordinal)
        self.prices.append(price)

    def records(self) -> Iterator[tuple[int, int, float]]:
        """The records as ``(price type index, goods ordinal, price)``."""
        return zip(self.kinds, self.goods, self.prices, strict=True)


@dataclass
class Seed:
    """Everything generated, ready for :class:`~.infobase.Infobase` to load."""

    refs: RefMaker
    units: list[dict[str, Any]] = field(default_factory=list)
    vat_rates: list[dict[str, Any]] = field(default_factory=list)
    warehouses: list[dict[str, Any]] = field(default_factory=list)
    price_types: list[dict[str, Any]] = field(default_factory=list)
    goods_kinds: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    # Goods as stored (JSON bytes) in creation order, which is their ordinal: kept encoded
    # from the start, a million goods never exist as dicts all at once.
    goods: list[bytes] = field(default_factory=list)
    # Registers in columns, like the registers themselves keep them (tuples of a million
    # records would double the peak memory of building the base).
    on_sale: array[int] = field(default_factory=lambda: array("i"))  # items without a mark
    barcode_goods: array[int] = field(default_factory=lambda: array("i"))  # ordinals
    barcode_codes: array[int] = field(default_factory=lambda: array("q"))
    prices: list[PriceDocument] = field(default_factory=list)
    stock_slots: array[int] = field(default_factory=lambda: array("q"))  # as StockRegister
    stock_values: tuple[array[float], ...] = field(
        default_factory=lambda: (array("d"), array("d"), array("d"))
    )
    orders: list[dict[str, Any]] = field(default_factory=list)
    currency: str = ""

    def good_key(self, ordinal: int) -> str:
        """The ``Ref_Key`` of the good with this ordinal."""
        return self.goods[ordinal][len(KEY_PREFIX) : KEY_END].decode()


def generate(items: int, warehouses: int, seed: int) -> Seed:
    """Build the infobase's data: ``items`` goods (plus folders), registers, orders."""
    rng = random.Random(seed)
    refs = RefMaker(rng)
    data = Seed(refs=refs, currency=refs())
    data.units = [
        catalog_row(refs(), 1, code, short, НаименованиеПолное=full) for short, code, full in UNITS
    ]
    unit_of = {row["Description"]: row["Ref_Key"] for row in data.units}
    data.vat_rates = [
        catalog_row(refs(), 1, f"{i + 1:09d}", name, Ставка=rate)
        for i, (name, rate) in enumerate(VAT_RATES)
    ]
    data.warehouses = [
        catalog_row(
            refs(), 1, f"{i + 1:09d}", WAREHOUSES[i] if i < len(WAREHOUSES) else f"Склад №{i + 1}"
        )
        for i in range(warehouses)
    ]
    data.price_types = [
        catalog_row(refs(), 1, f"{i + 1:09d}", name) for i, name in enumerate(PRICE_TYPES)
    ]
    data.goods_kinds = [
        catalog_row(refs(), 1, f"{i + 1:09d}", name, ТипНоменклатуры=kind)
        for i, (name, kind) in enumerate(GOODS_KINDS)
    ]
    data.customers = [
        catalog_row(refs(), 2, f"{i + 1:09d}", name, НаименованиеПолное=name, ИНН=inn)
        for i, (name, inn) in enumerate(CUSTOMERS)
    ]
    _goods(data, rng, items, unit_of)
    _registers(data, rng)
    _orders(data, rng, items)
    return data


def _warehouse_name(number: int) -> str:
    return WAREHOUSES[number] if number < len(WAREHOUSES) else f"Склад №{number + 1}"


def _goods(data: Seed, rng: random.Random, items: int, unit_of: dict[str, str]) -> None:
    refs = data.refs
    top = min(len(CATEGORIES), max(3, items // 200))
    folders: list[str] = []
    for i in range(top):
        folders.append(refs())
        data.goods.append(serialise(
            goods_row(folders[-1], 1, parent=ZERO_GUID, folder=True, code=f"УТ-{i + 1:08d}",
                      description=CATEGORIES[i], full_name=CATEGORIES[i])
        ))  # fmt: skip
    leaves = list(folders)
    for i in range(max(0, items // 50 - top)):
        leaves.append(refs())
        name = f"{CATEGORIES[i % top]}: серия {i // top + 1}"
        data.goods.append(serialise(
            goods_row(leaves[-1], 1, parent=folders[i % top], folder=True,
                      code=f"УТ-{len(data.goods) + 1:08d}", description=name, full_name=name)
        ))  # fmt: skip
    vat = [row["Ref_Key"] for row in data.vat_rates]
    kind = data.goods_kinds[0]["Ref_Key"]
    for i in range(items):
        noun, unit = pick(rng, GOODS)
        brand = pick(rng, BRANDS)
        name = f"{noun} «{brand}» {brand[0]}-{i + 1}"
        ordinal = len(data.goods)
        deleted = rng.random() < 0.02
        row = goods_row(
            refs(),
            1 + int(rng.random() * 4),
            parent=pick(rng, leaves),
            folder=False,
            code=f"УТ-{ordinal + 1:08d}",
            description=name,
            article="" if i % 7 == 0 else f"ART-{1000 + i}",
            full_name=f"{name}, {unit}",
            unit=unit_of[unit],
            vat=vat[pick(rng, VAT_WEIGHTS)],
            kind=kind,
            deleted=deleted,
        )
        data.goods.append(serialise(row))
        if not deleted:
            data.on_sale.append(ordinal)
        for _ in range(pick(rng, (0, 1, 1, 1, 2))):
            data.barcode_goods.append(ordinal)
            data.barcode_codes.append(ean13(rng))


def _registers(data: Seed, rng: random.Random) -> None:
    """Prices set a month ago and changed for a tenth of the goods yesterday; free stock."""
    on_sale = data.on_sale
    first = PriceDocument(data.refs(), format_datetime(BASE - timedelta(days=30)))
    retail = array("d")
    for ordinal in on_sale:
        price = int(50 + rng.random() * 2_500_000) / 100
        retail.append(price)
        first.add(0, ordinal, price)
        first.add(1, ordinal, round(price * WHOLESALE_FACTOR, 2))
    changed = PriceDocument(data.refs(), format_datetime(BASE - timedelta(days=1)))
    for ordinal, old in zip(on_sale, retail, strict=True):
        if rng.random() < 0.1:
            price = round(old * 1.05, 2)
            changed.add(0, ordinal, price)
            changed.add(1, ordinal, round(price * WHOLESALE_FACTOR, 2))
    data.prices += [first, changed]
    on_hand_column, from_stock_column, to_order_column = data.stock_values
    for ordinal in on_sale:
        for warehouse in range(len(data.warehouses)):
            if rng.random() >= 0.6:
                continue
            on_hand = float(int(rng.random() * 500))
            from_stock = float(int(rng.random() * (on_hand + 1))) if rng.random() < 0.3 else 0.0
            to_order = float(int(rng.random() * 20)) if rng.random() < 0.1 else 0.0
            data.stock_slots.append(ordinal << WAREHOUSE_BITS | warehouse)
            on_hand_column.append(on_hand)
            from_stock_column.append(from_stock)
            to_order_column.append(to_order)


def _orders(data: Seed, rng: random.Random, items: int) -> None:
    if not data.on_sale:
        return
    for i in range(max(10, items // 20)):
        ref = data.refs()
        lines = []
        for line in range(1, 2 + int(rng.random() * 4)):
            good = data.good_key(pick(rng, data.on_sale))
            quantity = 1 + int(rng.random() * 10)
            price = int(50 + rng.random() * 500_000) / 100
            lines.append({
                "Ref_Key": ref,
                "LineNumber": str(line),
                "Номенклатура_Key": good,
                "Количество": quantity,
                "Цена": price,
                "Сумма": round(quantity * price, 2),
            })  # fmt: skip
        status = pick(rng, ORDER_STATUSES)
        data.orders.append({
            "Ref_Key": ref,
            "DataVersion": data_version(1 + int(rng.random() * 6)),
            "DeletionMark": i % 29 == 28,
            "Number": f"ТД00-{i + 1:06d}",
            "Date": format_datetime(BASE - timedelta(hours=3 * (max(10, items // 20) - i))),
            "Posted": status != "НеСогласован" and i % 29 != 28,
            "Статус": status,
            "СуммаДокумента": round(sum(line["Сумма"] for line in lines), 2),
            "Комментарий": "" if i % 3 else "Доставка до 18:00",
            "НомерПоДаннымКлиента": f"WEB-{100000 + i}" if i % 2 == 0 else "",
            "Контрагент_Key": pick(rng, data.customers)["Ref_Key"],
            "Склад_Key": pick(rng, data.warehouses)["Ref_Key"],
            "Товары": lines,
        })  # fmt: skip

"""A deterministic Russian-language catalogue for the emulator: the same seed, the same data.

Rows are plain dicts in the contract's wire form (``shared/contracts/onec-http-service.md``),
without quirks; :mod:`.quirks` turns them into what a real 1C service sends when asked to.
Timestamps are 1C wall-clock times kept as integer milliseconds (see :mod:`.clock`).
"""

from __future__ import annotations

import base64
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from tradeos_pipelines.emulators.http_service.clock import BASE_MS, format_ms

CATEGORIES = (
    "Спецодежда",
    "Инструмент",
    "Крепёж",
    "Электротовары",
    "Сантехника",
    "Лакокрасочные материалы",
    "Хозтовары",
    "Канцтовары",
    "Бытовая химия",
    "Садовый инвентарь",
    "Освещение",
    "Упаковка",
)
# (noun, unit): the unit a 1C catalogue would give that kind of goods.
GOODS = (
    ("Перчатки рабочие", "пар"),
    ("Саморез по дереву", "шт"),
    ("Дрель ударная", "шт"),
    ("Кабель силовой ВВГнг", "м"),
    ("Смеситель для кухни", "шт"),
    ("Краска фасадная", "кг"),
    ("Ведро оцинкованное", "шт"),
    ("Ручка шариковая", "шт"),
    ("Средство моющее", "л"),
    ("Лопата штыковая", "шт"),
    ("Лампа светодиодная", "шт"),
    ("Коробка картонная", "упак"),
    ("Молоток слесарный", "шт"),
    ("Болт с шестигранной головкой", "шт"),
    ("Удлинитель сетевой", "шт"),
    ("Костюм рабочий", "шт"),
)
BRANDS = ("Профи", "Мастер", "Эконом", "Стандарт", "Титан", "Уют", "Север", "Гранит")
WAREHOUSES = (
    "Основной склад",
    "Склад Москва (Южный порт)",
    "Склад Санкт-Петербург",
    "Склад Екатеринбург",
    "Склад Новосибирск",
    "Розничный магазин №1",
    "Склад Казань",
    "Склад Краснодар",
)
VAT_RATES = ("20%",) * 16 + ("10%",) * 3 + ("Без НДС",)
ORDER_STATUSES = ("Не согласован", "Согласован", "К выполнению", "Закрыт")
CUSTOMERS = (
    "ООО «Ромашка»",
    "ИП Иванов Иван Иванович",
    "АО «СтройТрест»",
    "ООО «Вектор»",
    "ООО «Северная звезда»",
)


def pick(rng: random.Random, choices: tuple[Any, ...] | list[Any]) -> Any:
    """A random element (cheaper than ``rng.choice`` over a hundred thousand rows)."""
    return choices[int(rng.random() * len(choices))]


def new_uuid(rng: random.Random) -> str:
    """A version-4 GUID drawn from ``rng`` (deterministic, unlike :func:`uuid.uuid4`)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def data_version(number: int, revision: int) -> str:
    """An opaque ВерсияДанных-like string that changes with every revision."""
    return base64.b64encode(number.to_bytes(4, "big") + revision.to_bytes(4, "big")).decode()


def ean13(rng: random.Random) -> str:
    """A Russian EAN-13 barcode (prefix 460) with a correct check digit."""
    digits = f"460{int(rng.random() * 1_000_000_000):09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str((10 - total % 10) % 10)


@dataclass
class Catalogue:
    """Everything the emulated infobase holds, as wire-form rows with their timestamps."""

    warehouses: list[dict[str, str]]
    # (modified_at_ms, row) pairs; the store indexes and serialises them.
    nomenclature: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    stock: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    orders: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def generate(items: int, warehouses: int, seed: int) -> Catalogue:
    """Build ``items`` goods (plus their folders), stock in ``warehouses`` warehouses, orders.

    Three rows share each timestamp, so keyset paging must break ties on the key.
    """
    rng = random.Random(seed)
    catalogue = Catalogue(
        warehouses=[
            {
                "id": new_uuid(rng),
                "name": WAREHOUSES[i] if i < len(WAREHOUSES) else f"Склад №{i + 1}",
            }
            for i in range(warehouses)
        ]
    )
    row_number = 0

    def stamp() -> int:
        nonlocal row_number
        row_number += 1
        return BASE_MS + (row_number // 3) * 1000

    top_count = min(len(CATEGORIES), max(3, items // 200))
    folders: list[str] = []
    for i in range(top_count):
        folder_id = new_uuid(rng)
        folders.append(folder_id)
        catalogue.nomenclature.append((stamp(), _folder(i, folder_id, CATEGORIES[i], None)))
    leaf_folders = list(folders)
    for i in range(max(0, items // 50 - top_count)):
        parent = folders[i % top_count]
        folder_id = new_uuid(rng)
        leaf_folders.append(folder_id)
        name = f"{CATEGORIES[i % top_count]}: серия {i // top_count + 1}"
        catalogue.nomenclature.append((stamp(), _folder(top_count + i, folder_id, name, parent)))

    product_ids: list[str] = []
    for i in range(items):
        noun, unit = pick(rng, GOODS)
        brand = pick(rng, BRANDS)
        name = f"{noun} «{brand}» {brand[0]}-{i + 1}"
        product_id = new_uuid(rng)
        deleted = rng.random() < 0.02
        if not deleted:
            product_ids.append(product_id)
        number = 1000 + i
        catalogue.nomenclature.append(
            (
                stamp(),
                {
                    "id": product_id,
                    "code": f"00-{number:08d}",
                    "article": "" if i % 7 == 0 else f"ART-{number}",
                    "name": name,
                    "full_name": f"{name}, {unit}",
                    "unit": unit,
                    "group_id": pick(rng, leaf_folders),
                    "is_folder": False,
                    "barcodes": [ean13(rng) for _ in range(pick(rng, (0, 1, 1, 1, 2)))],
                    "price": int(50 + rng.random() * 2_500_000) / 100,
                    "vat": pick(rng, VAT_RATES),
                    "deleted": deleted,
                    "version": data_version(number, 1),
                },
            )
        )

    for product_id in product_ids:
        for warehouse in catalogue.warehouses:
            if rng.random() >= 0.6:
                continue
            quantity = int(rng.random() * 500)
            reserved = int(rng.random() * (quantity + 1)) if rng.random() < 0.3 else 0
            catalogue.stock.append((stamp(), stock_row(product_id, warehouse, quantity, reserved)))

    for i in range(max(10, items // 20)):
        order_id = new_uuid(rng)
        catalogue.orders.append(
            (
                stamp(),
                {
                    "id": order_id,
                    "number": f"ЗК-{i + 1:06d}",
                    # Half the orders were typed in 1C by a manager: no TradeOS id.
                    "external_id": new_uuid(rng) if i % 2 == 0 else None,
                    "status": pick(rng, ORDER_STATUSES),
                    # 1C leaves the date empty on a draft that was never posted.
                    "date": None if i % 15 == 7 else format_ms(BASE_MS - 86_400_000 + i * 60_000),
                    "total": int(100 + rng.random() * 10_000_000) / 100,
                },
            )
        )
    return catalogue


def stock_row(
    product_id: str, warehouse: dict[str, str], quantity: float, reserved: float
) -> dict[str, Any]:
    """A stock row in wire form (``available`` = ``quantity`` − ``reserved``)."""
    return {
        "product_id": product_id,
        "warehouse_id": warehouse["id"],
        "warehouse_name": warehouse["name"],
        "quantity": quantity,
        "reserved": reserved,
        "available": quantity - reserved,
    }


def _folder(number: int, folder_id: str, name: str, parent: str | None) -> dict[str, Any]:
    return {
        "id": folder_id,
        "code": f"ГР-{number:06d}",
        "article": "",
        "name": name,
        "full_name": name,
        "unit": None,
        "group_id": parent,
        "is_folder": True,
        "barcodes": [],
        "price": None,
        "vat": None,
        "deleted": False,
        "version": data_version(number, 1),
    }

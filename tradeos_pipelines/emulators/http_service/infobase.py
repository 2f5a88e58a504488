"""The emulated 1C infobase: its data, the changes tests make to it, faults and counters.

Everything here runs on the emulator's event loop thread, one request at a time, so no locks.
"""

from __future__ import annotations

import base64
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from tradeos_pipelines.emulators.http_service import catalogue, quirks
from tradeos_pipelines.emulators.http_service.clock import WallClock, format_ms, parse_local
from tradeos_pipelines.emulators.http_service.store import EntityStore

FAULT_KINDS = (
    "500",  # 1C raised an error: plain-text Russian body
    "502",  # the web server in front of 1C: HTML
    "503",  # HTML, service unavailable
    "429",  # overload, with Retry-After
    "slow",  # answer after `seconds`
    "drop",  # close the connection without answering
    "drop_after",  # do the work (e.g. create the order), then close without answering
    "truncated",  # 200 with the JSON cut in half
    "envelope",  # 200 with JSON that is not the contract's envelope
    "html",  # 200 with an HTML page (a proxy's login page, say)
    "echo_401",  # 401 "Wrong password for <the credentials it was sent>" (a careless 1C)
    "echo_500",  # 500 "Ошибка сеанса <the credentials it was sent>" (counts for the breaker)
    "echo_version",  # the normal answer, its "version" carrying the credentials it was sent
)
BAD_ROW_KINDS = {
    "no_id": "nomenclature",
    "no_name": "nomenclature",
    "bad_price": "nomenclature",
    "bad_uuid": "nomenclature",
    "unknown_product": "stock",
    "bad_quantity": "stock",
}


class ValidationFailed(ValueError):
    """A request 1C would refuse with 422; the message is what 1C says."""


@dataclass
class EmulatorOptions:
    """How the emulated infobase is built and protected."""

    items: int = 200
    warehouses: int = 3
    seed: int = 1
    quirks: bool = False
    timezone: str = "Europe/Moscow"
    api_key: str | None = None
    # (user, password) for Basic auth; user names may be Cyrillic.
    basic: tuple[str, str] | None = None
    # Required in X-Control-Key by /_control/; None switches the controls off.
    control_key: str | None = None


@dataclass
class Fault:
    """A failure served to the next ``remaining`` matching requests."""

    kind: str
    remaining: int = 1
    path: str | None = None  # substring of the request path, e.g. "/nomenclature"
    method: str | None = None
    seconds: float = 0.0  # for "slow"
    retry_after: int | None = None  # for "429"

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == method)
            and (self.path is None or self.path in path)
        )


@dataclass
class Counters:
    """What the emulator served since start or the last reset."""

    requests: Counter[str] = field(default_factory=Counter)  # "GET /hs/api/stock": n
    responses: Counter[str] = field(default_factory=Counter)  # "200": n
    rows_served: Counter[str] = field(default_factory=Counter)  # "nomenclature": n
    faults_served: Counter[str] = field(default_factory=Counter)  # "502": n
    orders_created: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "responses": dict(self.responses),
            "rows_served": dict(self.rows_served),
            "faults_served": dict(self.faults_served),
            "orders_created": self.orders_created,
        }


class Infobase:
    """The emulator's state, rebuilt identically by :meth:`reset`."""

    def __init__(self, options: EmulatorOptions) -> None:
        self.options = options
        self.reset()

    def reset(self) -> None:
        """Back to the generated catalogue: no changes, no faults, counters at zero."""
        options = self.options
        data = catalogue.generate(options.items, options.warehouses, options.seed)
        self.rng = random.Random(options.seed + 1)
        self.clock = WallClock(options.timezone)
        self.quirks = options.quirks
        self.warehouses = {w["id"]: w for w in data.warehouses}
        self.nomenclature = EntityStore(
            "nomenclature",
            ((ms, row["id"], row) for ms, row in data.nomenclature),
            quirks.nomenclature,
        )
        self.stock = EntityStore(
            "stock", ((ms, stock_key(row), row) for ms, row in data.stock), quirks.stock
        )
        self.orders = EntityStore(
            "orders", ((ms, row["id"], row) for ms, row in data.orders), quirks.orders
        )
        self.products: dict[str, bool] = {}  # id -> is_folder
        for ms, row in data.nomenclature:
            self.products[row["id"]] = row["is_folder"]
            self.clock.observe(ms)
        for ms, _row in (*data.stock, *data.orders):
            self.clock.observe(ms)
        self.order_by_external_id = {
            row["external_id"]: row["id"] for _, row in data.orders if row["external_id"]
        }
        self.order_details: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.counters = Counters()
        self._bad_rows = 0
        self._order_numbers = len(data.orders)

    def store(self, entity: str) -> EntityStore:
        return {"nomenclature": self.nomenclature, "stock": self.stock, "orders": self.orders}[
            entity
        ]

    # ----- faults -----------------------------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if fault.remaining < 1:
            raise ValueError("count must be at least 1")
        self.faults.append(fault)

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first armed fault for this request, counted as served."""
        for fault in self.faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                self.counters.faults_served[fault.kind] += 1
                return fault
        return None

    # ----- changes tests make -----------------------------------------------------------
    def change_items(self, count: int, ids: list[str] | None) -> list[str]:
        """Edit goods (price up, new data version); they move to the end of the order."""
        keys = ids or self.nomenclature.index.oldest(count, self._is_good)
        for key in keys:
            row = self._existing(self.nomenclature, key)
            if row.get("price") is not None:
                row["price"] = round(float(row["price"]) * 1.01 + 1, 2)
            row["version"] = _next_version(row.get("version"))
            self.nomenclature.put(key, row, self.clock.now_ms())
        return keys

    def mark_deleted(self, count: int, ids: list[str] | None) -> list[str]:
        """Set ПометкаУдаления on goods (1C never deletes physically)."""
        keys = ids or self.nomenclature.index.oldest(
            count, lambda key: self._is_good(key) and not self.nomenclature.get(key)["deleted"]
        )
        for key in keys:
            row = self._existing(self.nomenclature, key)
            row["deleted"] = True
            row["version"] = _next_version(row.get("version"))
            self.nomenclature.put(key, row, self.clock.now_ms())
        return keys

    def change_stock(self, count: int) -> list[dict[str, Any]]:
        """Receive goods on the least recently changed stock rows."""
        changed = []
        for key in self.stock.index.oldest(count, lambda key: not key.startswith("bad-")):
            row = self.stock.get(key)
            row["quantity"] = row["quantity"] + self.rng.randrange(1, 20)
            row["available"] = row["quantity"] - row["reserved"]
            self.stock.put(key, row, self.clock.now_ms())
            changed.append(row)
        return changed

    def set_order_status(self, count: int, order_id: str | None, status: str | None) -> list[dict]:
        """Move orders to a new status (the given one, or the next in the usual flow)."""
        keys = [order_id] if order_id else self.orders.index.oldest(count, lambda key: True)
        changed = []
        for key in keys:
            row = self._existing(self.orders, key)
            if status is not None:
                row["status"] = status
            else:
                flow = catalogue.ORDER_STATUSES
                current = flow.index(row["status"]) if row["status"] in flow else -1
                row["status"] = flow[(current + 1) % len(flow)]
            self.orders.put(key, row, self.clock.now_ms())
            changed.append(row)
        return changed

    def inject_bad_rows(self, kind: str, count: int) -> list[dict[str, Any]]:
        """Append rows a parser must reject (or, for stock of an unknown product, the engine)."""
        entity = BAD_ROW_KINDS.get(kind)
        if entity is None:
            raise ValueError(f"unknown bad row kind {kind!r}; one of {', '.join(BAD_ROW_KINDS)}")
        made = []
        for _ in range(count):
            self._bad_rows += 1
            key = f"bad-{self._bad_rows:06d}"
            row = self._bad_row(kind, key)
            self.store(entity).put(key, row, self.clock.now_ms())
            made.append(row)
        return made

    def fix_bad_rows(self, ids: list[str]) -> list[str]:
        """Fix injected bad catalogue rows whose ``id`` is in ``ids`` (a name, a price, a new
        data version), as someone does in 1C after seeing the reject; returns their ids."""
        fixed = []
        for n in range(1, self._bad_rows + 1):
            key = f"bad-{n:06d}"
            if key not in self.nomenclature:
                continue
            row = self.nomenclature.get(key)
            if row.get("id") not in ids:
                continue
            row["name"] = f"Исправленная строка {n}"
            row["price"] = 10.0
            row["version"] = _next_version(row.get("version"))
            self.nomenclature.put(key, row, self.clock.now_ms())
            fixed.append(row["id"])
        return fixed

    def _bad_row(self, kind: str, key: str) -> dict[str, Any]:
        some_id = catalogue.new_uuid(self.rng)
        if entity_of(kind) == "stock":
            warehouse = next(iter(self.warehouses.values()))
            row = catalogue.stock_row(some_id, warehouse, 5, 0)
            if kind == "bad_quantity":
                row["product_id"] = next(k for k, folder in self.products.items() if not folder)
                row["quantity"] = "много"
            return row
        row = {
            "id": some_id,
            "code": f"ОШ-{self._bad_rows:06d}",
            "article": "",
            "name": f"Испорченная строка {self._bad_rows}",
            "full_name": None,
            "unit": "шт",
            "group_id": None,
            "is_folder": False,
            "barcodes": [],
            "price": 10.0,
            "vat": "20%",
            "deleted": False,
            "version": catalogue.data_version(900_000 + self._bad_rows, 1),
        }
        if kind == "no_id":
            del row["id"]
        elif kind == "no_name":
            row["name"] = ""
        elif kind == "bad_price":
            row["price"] = "abc"
        elif kind == "bad_uuid":
            row["id"] = f"not-a-guid-{self._bad_rows}"
        return row

    # ----- orders -------------------------------------------------------------------------
    def create_order(self, body: Any) -> tuple[bool, dict[str, Any]]:
        """(created, answer); ``created`` is False when ``external_id`` is already known.

        :class:`ValidationFailed` carries 1C's message for a refused order.
        """
        if not isinstance(body, dict):
            raise ValidationFailed("Ожидается объект JSON с описанием заказа")
        external_id = _guid(body.get("external_id"), "external_id")
        existing = self.order_by_external_id.get(external_id)
        if existing is not None:
            return False, self._order_answer(self.orders.get(existing))
        lines = body.get("items")
        if not isinstance(lines, list) or not lines:
            raise ValidationFailed("В заказе нет ни одной строки товаров")
        customer = body.get("customer")
        if not isinstance(customer, dict) or not customer.get("name"):
            raise ValidationFailed("Не указан клиент (customer.name)")
        warehouse_id = body.get("warehouse_id")
        if warehouse_id is not None and warehouse_id not in self.warehouses:
            raise ValidationFailed(f"Склад не найден: {warehouse_id}")
        total = Decimal(0)
        for number, line in enumerate(lines, start=1):
            if not isinstance(line, dict):
                raise ValidationFailed(f"Строка {number}: ожидается объект")
            product_id = str(line.get("product_id"))
            if product_id not in self.products:
                raise ValidationFailed(f"Номенклатура не найдена: {product_id}")
            if self.products[product_id]:
                raise ValidationFailed(f"Строка {number}: {product_id} — это группа номенклатуры")
            quantity = _decimal(line.get("quantity"), f"Строка {number}: количество")
            price = _decimal(line.get("price"), f"Строка {number}: цена")
            if quantity <= 0:
                raise ValidationFailed(f"Строка {number}: количество должно быть больше нуля")
            total += quantity * price
        date = body.get("date")
        try:
            date_text = format_ms(parse_local(str(date)[:23])) if date else None
        except ValueError as exc:
            raise ValidationFailed(f"Дата заказа: {exc}") from None
        self._order_numbers += 1
        order_id = catalogue.new_uuid(self.rng)
        row = {
            "id": order_id,
            "number": f"ЗК-{self._order_numbers:06d}",
            "external_id": external_id,
            "status": "Согласован",
            "date": date_text,
            "total": float(total),
        }
        self.orders.put(order_id, row, self.clock.now_ms())
        self.order_by_external_id[external_id] = order_id
        self.order_details[order_id] = body
        self.counters.orders_created += 1
        return True, self._order_answer(self.orders.get(order_id))

    def find_orders(self, external_id: str | None) -> list[dict[str, Any]]:
        """Orders as 1C lists them (with what TradeOS sent, for orders it created)."""
        if external_id is not None:
            order_id = self.order_by_external_id.get(external_id)
            keys = [order_id] if order_id else []
        else:
            keys = [key for _, key in self.orders.index.slice(0, len(self.orders))]
        return [{**self.orders.get(key), "request": self.order_details.get(key)} for key in keys]

    @staticmethod
    def _order_answer(row: dict[str, Any]) -> dict[str, Any]:
        return {key: row[key] for key in ("id", "number", "status", "external_id")}

    # ----- helpers ------------------------------------------------------------------------
    def _is_good(self, key: str) -> bool:
        return self.products.get(key) is False

    @staticmethod
    def _existing(store: EntityStore, key: str) -> dict[str, Any]:
        if key not in store:
            raise ValueError(f"{store.name}: no row with id {key!r}")
        return store.get(key)


def stock_key(row: dict[str, Any]) -> str:
    return f"{row['product_id']}/{row['warehouse_id']}"


def entity_of(bad_row_kind: str) -> str:
    return BAD_ROW_KINDS[bad_row_kind]


def _next_version(version: str | None) -> str:
    number, revision = 0, 0
    if version:
        raw = base64.b64decode(version)
        number, revision = int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:], "big")
    return catalogue.data_version(number, revision + 1)


def _guid(value: Any, name: str) -> str:
    try:
        return str(UUID(str(value)))
    except ValueError:
        raise ValidationFailed(
            f"Поле {name}: ожидается уникальный идентификатор, получено {value!r}"
        ) from None


def _decimal(value: Any, what: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValidationFailed(f"{what}: ожидается число, получено {value!r}") from None
    if not number.is_finite():
        raise ValidationFailed(f"{what}: ожидается число, получено {value!r}")
    return number

"""The emulated infobase: its data, what is published, rights, armed faults and counters.

Everything here runs on the emulator's event loop thread, one request at a time, so there
are no locks. :meth:`Infobase.reset` rebuilds the same data from the seed.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from tradeos_pipelines.emulators.odata import seed as seeding
from tradeos_pipelines.emulators.odata.query import (
    Filter,
    ODataError,
    format_datetime,
    parse_datetime,
)
from tradeos_pipelines.emulators.odata.registers import (
    BarcodeRegister,
    PriceRegister,
    StockRegister,
)
from tradeos_pipelines.emulators.odata.schema import (
    BARCODES,
    BOOLEAN,
    DATETIME,
    DOUBLE,
    EMPTY_DATE,
    ENUMS,
    GOODS,
    GOODS_KINDS,
    GUID,
    INT64,
    ORDER_LINES,
    ORDERS,
    PRICE_TYPES,
    STOCK,
    UNITS,
    VAT_RATES,
    WAREHOUSES,
    ZERO_GUID,
    EntityType,
    MetaObject,
    Prop,
    build_objects,
    price_register_name,
)
from tradeos_pipelines.emulators.odata.stores import (
    Access,
    ObjectStore,
    ResumeCache,
    Table,
    TabularRows,
    number,
)

WEB_SERVERS = ("apache", "iis")


@dataclass
class ODataEmulatorOptions:
    """How the emulated infobase is built, published and protected."""

    items: int = 1000
    warehouses: int = 3
    seed: int = 1
    publication: str = "/trade"
    # Basic auth; None accepts any request. User names may be Cyrillic (sent as UTF-8).
    username: str | None = None
    password: str = ""
    # Required in X-Control-Key by /_control/; None switches the controls off.
    control_key: str | None = None
    timezone: str = "Europe/Moscow"
    # "ЦеныНоменклатуры25" (УТ 11.5) or "ЦеныНоменклатуры" (УТ 11.4).
    price_register: str = "ЦеныНоменклатуры25"
    # Published objects; None publishes every object of the configuration.
    published: tuple[str, ...] | None = None
    # Seconds the Balance virtual table takes (a real УТ base: 12–19 s).
    balance_delay: float = 0.0
    # Whose HTML pages a fault or a long URL gets: "apache" or "iis".
    web_server: str = "apache"
    # Longest query string the web server lets through (IIS: 2048 by default); None: any.
    max_query_length: int | None = None

    def __post_init__(self) -> None:
        if self.items < 0 or not 1 <= self.warehouses <= 255:
            raise ValueError("items must be >= 0 and warehouses between 1 and 255")
        if self.web_server not in WEB_SERVERS:
            raise ValueError(f"web_server must be one of {', '.join(WEB_SERVERS)}")
        if not self.publication.startswith("/") or self.publication.endswith("/"):
            raise ValueError("publication is a path like /trade")
        price_register_name(self.price_register)
        if self.published is not None:
            self.published = tuple(self.published)
            known = build_objects(self.price_register)
            unknown = [name for name in self.published if name not in known]
            if unknown:
                raise ValueError(f"unknown objects {unknown}; known: {', '.join(known)}")


@dataclass
class Fault:
    """An answer served instead of the real one to the next ``remaining`` matching requests.

    ``status`` None with a ``delay`` only slows the requests down; ``drop`` closes the
    connection without an answer. ``path`` is a prefix of the resource path after
    ``standard.odata/`` (``Catalog_Номенклатура``) or, starting with ``/``, of the URL path;
    ``query``, when given, must occur in the decoded query string (``Ref_Key ge guid``).
    """

    status: int | None = None
    body: str | None = None
    content_type: str | None = None
    remaining: int = 1
    path: str | None = None
    method: str | None = None
    delay: float = 0.0
    drop: bool = False
    retry_after: int | None = None  # a Retry-After header (429/503 of an overloaded server)
    query: str | None = None

    def __post_init__(self) -> None:
        if self.remaining < 1:
            raise ValueError("count must be at least 1")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must not be negative")
        if self.status is None and not self.drop and self.delay == 0:
            raise ValueError("a fault needs a status, a delay or drop")
        if self.query is not None and not isinstance(self.query, str):
            raise ValueError("query must be a string")

    def matches(self, method: str, resource: str, url_path: str, query: str = "") -> bool:
        """Whether this request gets the fault (while it has answers left)."""
        if self.remaining <= 0 or (self.method is not None and self.method.upper() != method):
            return False
        if self.query is not None and self.query not in query:
            return False
        if self.path is None:
            return True
        return (url_path if self.path.startswith("/") else resource).startswith(self.path)


@dataclass
class PostingFailure:
    """Posting armed to fail ``remaining`` times (for ``ids`` only, when given)."""

    remaining: int
    message: str | None = None
    ids: frozenset[str] | None = None


@dataclass
class Counters:
    """What the emulator served since start or the last reset."""

    requests: Counter[str] = field(default_factory=Counter)  # "GET Catalog_Номенклатура": n
    responses: Counter[str] = field(default_factory=Counter)  # "200": n
    rows_served: Counter[str] = field(default_factory=Counter)  # by entity set
    bytes_served: Counter[str] = field(default_factory=Counter)  # by entity set, and "total"
    faults_served: Counter[str] = field(default_factory=Counter)  # by status ("drop", "delay")
    orders_created: int = 0
    documents_posted: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "responses": dict(self.responses),
            "rows_served": dict(self.rows_served),
            "bytes_served": dict(self.bytes_served),
            "faults_served": dict(self.faults_served),
            "orders_created": self.orders_created,
            "documents_posted": self.documents_posted,
        }


_REVISION = re.compile(r" \(изм\. \d+\)$")


class Infobase:
    """The emulator's state, rebuilt identically by :meth:`reset`."""

    def __init__(self, options: ODataEmulatorOptions) -> None:
        self.options = options
        self.objects = build_objects(options.price_register)
        self.price_register = price_register_name(options.price_register)
        # entity set -> the object that publishes it
        self.set_owner = {e.name: o.name for o in self.objects.values() for e in o.entities}
        self.row_types = {t.name: t for o in self.objects.values() for t in o.complex_types}
        self.reset()

    # ----- building -------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the seeded data, everything published as configured, nothing armed."""
        options = self.options
        data = seeding.generate(options.items, options.warehouses, options.seed)
        self.rng = random.Random(options.seed + 1)
        self.refs = seeding.RefMaker(random.Random(options.seed + 2))
        self.zone = ZoneInfo(options.timezone)
        self.catalogs: dict[str, ObjectStore] = {}
        for name, rows in (
            (UNITS, data.units),
            (VAT_RATES, data.vat_rates),
            (WAREHOUSES, data.warehouses),
            (PRICE_TYPES, data.price_types),
            (GOODS_KINDS, data.goods_kinds),
            ("Catalog_Контрагенты", data.customers),
            (ORDERS, data.orders),
        ):
            store = ObjectStore(self.objects[name].main)
            store.load(rows)
            self.catalogs[name] = store
        self.goods = ObjectStore(self.objects[GOODS].main, ordinals=True)
        self.goods.load_encoded(data.goods)
        self.catalogs[GOODS] = self.goods
        self.orders = self.catalogs[ORDERS]
        self.warehouse_keys = [row["Ref_Key"] for row in data.warehouses]
        self.price_type_keys = [row["Ref_Key"] for row in data.price_types]
        self.barcodes = BarcodeRegister(self.goods)
        self.barcodes.ordinals, self.barcodes.codes = data.barcode_goods, data.barcode_codes
        self.prices = PriceRegister(
            self.price_register, self.goods, self.price_type_keys, data.currency
        )
        for document in data.prices:
            self.prices.record(document.recorder, document.period, document.records())
        self.stock = StockRegister(self.goods, self.warehouse_keys)
        self.stock.slots, self.stock.values = data.stock_slots, list(data.stock_values)
        self.codes = len(data.goods)
        self.order_numbers = len(data.orders)
        names = options.published if options.published is not None else tuple(self.objects)
        self.published: set[str] = set()
        self.set_published(list(names))
        self.denied: dict[str, frozenset[str] | None] = {}
        self.faults: list[Fault] = []
        self.posting_failures: list[PostingFailure] = []
        self.balance_delay = options.balance_delay
        self.created_orders: list[str] = []
        self.counters = Counters()
        self.cache = ResumeCache()
        self.generation = 0

    def touch(self) -> None:
        """A write happened: remembered page positions no longer hold."""
        self.generation += 1
        self.cache.clear()

    def now(self) -> str:
        """The 1C server's local time, no zone, to the second."""
        return format_datetime(datetime.now(self.zone).replace(tzinfo=None))

    # ----- publication and rights -----------------------------------------------------------
    def _known(self, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in self.objects]
        if unknown:
            raise ValueError(f"unknown objects {unknown}; known: {', '.join(self.objects)}")
        return names

    def set_published(self, names: list[str]) -> None:
        """Publish exactly ``names``, as УстановитьСоставСтандартногоИнтерфейсаOData does."""
        self.published = set(self._known(names))

    def publish(self, names: list[str]) -> None:
        """Add objects to the published set."""
        self.published |= set(self._known(names))

    def unpublish(self, names: list[str]) -> None:
        """Take objects out of the published set."""
        self.published -= set(self._known(names))

    def published_object(self, entity_set: str) -> MetaObject | None:
        """The object behind a published entity set, or None (not there, not published)."""
        owner = self.set_owner.get(entity_set)
        return self.objects[owner] if owner in self.published else None

    def deny_read(self, name: str, ids: list[str] | None = None) -> None:
        """Take away the right to read an object, or (``ids``) only some of its objects."""
        self._known([name])
        if ids is not None and self.objects[name].kind not in ("catalog", "document"):
            raise ValueError("ids restrict catalogs and documents; a register is denied whole")
        self.denied[name] = None if ids is None else frozenset(_guid(i, "ids") for i in ids)
        self.touch()

    def allow_read(self, name: str) -> None:
        """Give back the right to read an object (all of it)."""
        self._known([name])
        self.denied.pop(name, None)
        self.touch()

    def access(self, obj: MetaObject, entity_set: str, allowed_only: bool) -> Access | None:
        """The restrictions a read of ``obj`` runs under; code 20 when it may not be read."""
        if obj.name not in self.denied:
            return None
        ids = self.denied[obj.name]
        if ids is None:
            raise ODataError(
                403, "20", f"Нарушение прав доступа! Нет права «Чтение» объекта «{obj.name}»"
            )
        return Access(ids, allowed_only, entity_set)

    # ----- tables ---------------------------------------------------------------------------
    def table(self, entity_set: str) -> Table:
        """The rows of a (published) entity set."""
        if entity_set in self.catalogs:
            return self.catalogs[entity_set]
        if entity_set == f"{ORDERS}_{ORDER_LINES}":
            return TabularRows(self.entity(entity_set), self.orders, ORDER_LINES)
        if entity_set == BARCODES:
            return self.barcodes.table(self.entity(entity_set))
        if entity_set == self.price_register:
            return self.prices.record_sets_table(self.entity(entity_set))
        if entity_set == f"{self.price_register}_RecordType":
            return self.prices.records_table(self.entity(entity_set))
        assert self.set_owner[entity_set] == STOCK
        raise ODataError(
            400,
            "0",
            "Возможность не поддерживается эмулятором: движения регистра "
            f"{STOCK} не хранятся, остатки дает Balance()",
        )

    def entity(self, entity_set: str) -> EntityType:
        """The entity type of an entity set."""
        obj = self.objects[self.set_owner[entity_set]]
        return next(e for e in obj.entities if e.name == entity_set)

    def slice_table(self, *, first: bool, period: str | None, condition: Filter | None) -> Table:
        """``SliceLast``/``SliceFirst`` of the price register."""
        entity = self.entity(f"{self.price_register}_RecordType")
        return self.prices.slice_table(entity, first=first, period=period, condition=condition)

    def balance_table(self, dimensions: tuple[str, ...], condition: Filter | None) -> Table:
        """``Balance`` of free stock."""
        entity = self.row_types[f"{STOCK}_Balance"]
        return self.stock.balance_table(entity, dimensions, condition)

    # ----- faults ---------------------------------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        """Arm a fault after those already armed."""
        self.faults.append(fault)

    def take_fault(
        self, method: str, resource: str, url_path: str, query: str = ""
    ) -> Fault | None:
        """The first armed fault for this request, counted as served."""
        for fault in self.faults:
            if fault.matches(method, resource, url_path, query):
                fault.remaining -= 1
                kind = "drop" if fault.drop else str(fault.status or "delay")
                self.counters.faults_served[kind] += 1
                return fault
        return None

    # ----- changes tests make ---------------------------------------------------------------
    def _pick_goods(self, count: int, ids: list[str] | None, want: Any = None) -> list[str]:
        """``ids`` (checked), or ``count`` items (not folders) drawn at random from the seed."""
        if ids is not None:
            keys = [_guid(i, "ids") for i in ids]
            missing = [k for k in keys if k not in self.goods]
            if missing:
                raise ValueError(f"{GOODS}: no objects {missing}")
            return keys
        rows = self.goods.rows

        def wanted(index: int) -> bool:
            raw = rows[index]
            return b'"IsFolder":false' in raw and (want is None or want(raw))

        # Draw at random (cheap over a million goods); when draws keep missing, few goods
        # qualify, and a pass in key order finds the rest.
        chosen: set[int] = set()
        for _ in range(20 * count + 100 if rows else 0):
            if len(chosen) == count:
                break
            index = int(self.rng.random() * len(rows))
            if index not in chosen and wanted(index):
                chosen.add(index)
        for index in range(len(rows)):
            if len(chosen) >= count:
                break
            if index not in chosen and wanted(index):
                chosen.add(index)
        return [self.goods.key_at(i) for i in sorted(chosen)]

    def _rewrite(self, store: ObjectStore, row: dict[str, Any]) -> None:
        row["DataVersion"] = seeding.next_version(row["DataVersion"])
        store.put(row)
        self.touch()

    def change_items(
        self, count: int = 1, ids: list[str] | None = None, fields: dict[str, Any] | None = None
    ) -> list[str]:
        """Edit goods (each write gives a new DataVersion); returns their keys.

        Without ``fields`` the name and full name get a revision mark ``(изм. N)``.
        """
        keys = self._pick_goods(count, ids)
        for key in keys:
            row = self.goods.get(key)
            assert row is not None
            if fields:
                _apply(self.goods.entity, row, fields, self.row_types)
            else:
                revision = seeding.revision(row["DataVersion"]) + 1
                for name in ("Description", "НаименованиеПолное"):
                    row[name] = f"{_REVISION.sub('', row[name])} (изм. {revision})"
            self._rewrite(self.goods, row)
        return keys

    def mark_deleted(
        self, count: int = 1, ids: list[str] | None = None, mark: bool = True
    ) -> list[str]:
        """Set (or clear) the deletion mark of goods; 1C never deletes through OData here."""
        pattern = f'"DeletionMark":{"false" if mark else "true"}'.encode()
        keys = self._pick_goods(count, ids, lambda raw: pattern in raw)
        for key in keys:
            row = self.goods.get(key)
            assert row is not None
            row["DeletionMark"] = mark
            self._rewrite(self.goods, row)
        return keys

    def add_items(self, count: int = 1, stock: float = 0) -> list[str]:
        """New goods with a barcode and both prices (set now), and ``stock`` of each received
        in every warehouse (none when 0); returns their keys."""
        if not 0 <= stock <= 1e9:
            raise ValueError("stock must be between 0 and 1e9")
        unit = self._find(UNITS, "шт")
        vat = self._find(VAT_RATES, "20%")
        kind = self._find(GOODS_KINDS, "Товар")
        keys, records = [], []
        for _ in range(count):
            self.codes += 1
            key = self.refs()
            name = f"Новый товар {self.codes}"
            ordinal = self.goods.ordinals
            self.goods.put(
                seeding.goods_row(
                    key, 0, parent=ZERO_GUID, folder=False, code=f"УТ-{self.codes:08d}",
                    description=name, article=f"NEW-{self.codes}", full_name=f"{name}, шт",
                    unit=unit, vat=vat, kind=kind,
                )
            )  # fmt: skip
            self.barcodes.add(ordinal, seeding.ean13(self.rng))
            for warehouse in range(len(self.warehouse_keys)) if stock else ():
                self.stock.set(ordinal, warehouse, (float(stock), 0.0, 0.0))
            price = int(50 + self.rng.random() * 100_000) / 100
            records += [(0, ordinal, price), (1, ordinal, round(price * 0.85, 2))]
            keys.append(key)
        if records:
            self.prices.record(self.refs(), self._price_period(), records)
        self.touch()
        return keys

    def _find(self, catalog: str, description: str) -> str:
        """The key of a seeded catalog item by its name."""
        return next(
            o["Ref_Key"]
            for o in self.catalogs[catalog].objects()
            if o["Description"] == description
        )

    def _price_period(self) -> str:
        return max(self.now(), self.prices.periods[-1]) if self.prices.periods else self.now()

    def change_prices(
        self, count: int = 1, ids: list[str] | None = None, price_type: str | None = None
    ) -> dict[str, Any]:
        """A new price-setting document (dated now) for goods; returns it and the goods."""
        kinds = list(range(len(self.price_type_keys)))
        if price_type is not None:
            wanted = _guid(price_type, "price_type")
            if wanted not in self.price_type_keys:
                raise ValueError(f"{PRICE_TYPES}: no object {wanted}")
            kinds = [self.price_type_keys.index(wanted)]
        keys = self._pick_goods(count, ids, lambda raw: b'"DeletionMark":false' in raw)
        records = []
        for key in keys:
            ordinal = self.goods.ordinal(key)
            assert ordinal is not None
            for kind in kinds:
                latest = self.prices.latest[kind]
                index = latest[ordinal] if ordinal < len(latest) else -1
                old = self.prices.price[index] if index >= 0 else 100.0
                records.append((kind, ordinal, round(old * 1.03 + 1, 2)))
        recorder = self.refs()
        self.prices.record(recorder, self._price_period(), records)
        self.touch()
        return {"recorder": recorder, "ids": keys}

    def change_stock(self, count: int = 1) -> list[dict[str, Any]]:
        """Receive goods on ``count`` stock rows; returns the rows as they are now."""
        size = len(self.stock)
        changed = []
        for index in sorted(self.rng.sample(range(size), min(count, size))):
            slot = self.stock.slots[index]
            values = tuple(column[index] for column in self.stock.values)
            received = float(self.rng.randrange(1, 20))
            self.stock.set(slot >> 8, slot & 0xFF, (values[0] + received, values[1], values[2]))
            changed.append(self.stock.raw(index))
        self.touch()
        return changed

    def stock_rows(self) -> list[dict[str, Any]]:
        """Every balance row with all dimensions, zero rows included (tests check Balance)."""
        return [self.stock.raw(i) for i in range(len(self.stock))]

    def arm_posting_failure(
        self, count: int = 1, message: str | None = None, ids: list[str] | None = None
    ) -> None:
        """Make the next ``count`` postings fail (of ``ids`` only, when given); 0 disarms."""
        if count <= 0:
            self.posting_failures.clear()
            return
        keys = frozenset(_guid(i, "ids") for i in ids) if ids is not None else None
        self.posting_failures.append(PostingFailure(count, message, keys))

    # ----- writes over OData ----------------------------------------------------------------
    def create(self, entity_set: str, body: Any) -> dict[str, Any]:
        """``POST <Set>``: a new catalog item or document from a JSON body (code 15 if the
        given ``Ref_Key`` exists); returns the whole object as written."""
        store = self.catalogs[entity_set]
        entity = store.entity
        if not isinstance(body, dict):
            raise _internal("Ожидается объект JSON")
        row = {p.name: _empty(p) for p in entity.props}
        key = body.get("Ref_Key")
        key = _coerce(entity.by_name["Ref_Key"], key) if key is not None else ZERO_GUID
        if key == ZERO_GUID:
            key = self.refs()
        elif key in store:
            raise ODataError(400, "15", f"Сущность с таким ключом уже существует: {key}")
        row["Ref_Key"] = key
        _apply(entity, row, body, self.row_types)
        row["DataVersion"] = seeding.data_version(0)
        if "Code" in row and not row["Code"]:
            self.codes += 1
            row["Code"] = f"УТ-{self.codes:08d}"
        if entity_set == ORDERS:
            if not row["Number"]:
                self.order_numbers += 1
                row["Number"] = f"ТД00-{self.order_numbers:06d}"
            if row["Date"] == EMPTY_DATE:
                row["Date"] = self.now()
            row["Статус"] = row["Статус"] or "НеСогласован"
            _total(row)
            self.created_orders.append(key)
            self.counters.orders_created += 1
        if entity_set == GOODS:
            self.goods.put(row)
        else:
            store.put(row)
        self.touch()
        return row

    def update(self, entity_set: str, key: str, body: Any) -> dict[str, Any]:
        """``PATCH <Set>(guid'…')``: only the given properties; a tabular part is replaced."""
        store = self.catalogs[entity_set]
        row = store.get(key)
        if row is None:
            raise not_found(entity_set, key)
        if not isinstance(body, dict):
            raise _internal("Ожидается объект JSON")
        _apply(store.entity, row, body, self.row_types)
        if entity_set == ORDERS:
            _total(row)
        self._rewrite(store, row)
        return row

    def post(self, key: str, posting: bool) -> None:
        """``Post``/``Unpost`` a customer order; failures are 1C's code -1 with its text."""
        row = self.orders.get(key)
        if row is None:
            raise not_found(ORDERS, key)
        if posting:
            title = _document_title(row)
            if row["DeletionMark"]:
                raise _internal(f"Не удалось провести {title}: документ помечен на удаление")
            failure = next(
                (f for f in self.posting_failures if f.ids is None or key in f.ids), None
            )
            if failure is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self.posting_failures.remove(failure)
                raise _internal(failure.message or self._shortage(row, title))
            if row["Контрагент_Key"] == ZERO_GUID:
                raise _internal(f'Не удалось провести {title}: поле "Контрагент" не заполнено')
            if not row[ORDER_LINES]:
                raise _internal(
                    f'Не удалось провести {title}: не заполнена табличная часть "Товары"'
                )
            self.counters.documents_posted += 1
        row["Posted"] = posting
        self._rewrite(self.orders, row)

    def _shortage(self, row: dict[str, Any], title: str) -> str:
        """1C's refusal for an order that asks for more than is free in its warehouse."""
        line = row[ORDER_LINES][0] if row[ORDER_LINES] else {}
        good = self.goods.get(line.get("Номенклатура_Key", ZERO_GUID)) or {}
        warehouse = self.catalogs[WAREHOUSES].get(row["Склад_Key"]) or {}
        wanted = line.get("Количество", 0)
        return (
            f"Не удалось провести {title} по причине:\n"
            f'Недостаточно товара "{good.get("Description", "<не найден>")}" на складе '
            f'"{warehouse.get("Description", "<не указан>")}": требуется {wanted:g} шт, '
            f"доступно {max(0, wanted - 1):g} шт"
        )


# ----- values from a JSON body ---------------------------------------------------------------
def not_found(entity_set: str, key: str) -> ODataError:
    """Code 9, 404: no object with that key."""
    return ODataError(
        404, "9", f'Экземпляр сущности "{entity_set}" не найден по переданному ключу {key}'
    )


def _internal(message: str) -> ODataError:
    """Code -1, 500: what 1C raised inside (a refused posting, a handler's exception)."""
    return ODataError(500, "-1", message)


def _bad_value(value: Any, edm: str) -> ODataError:
    return ODataError(400, "1", f"Не удалось разобрать строку '{value}' как значение типа {edm}!")


def _guid(value: Any, name: str) -> str:
    try:
        return str(UUID(str(value)))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a GUID") from None


def _empty(prop: Prop) -> Any:
    if prop.rows is not None:
        return []
    return {GUID: ZERO_GUID, BOOLEAN: False, DATETIME: EMPTY_DATE, DOUBLE: 0, INT64: "0"}.get(
        prop.edm, ""
    )


def _coerce(prop: Prop, value: Any) -> Any:
    """A body value as 1C stores it, or 1C's refusal (probe P8: code 1 echoing the value)."""
    if value is None:
        return _empty(prop)
    if prop.edm == GUID:
        try:
            return str(UUID(str(value)))
        except ValueError:
            raise _bad_value(value, GUID) from None
    if prop.edm == BOOLEAN:
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise _bad_value(value, BOOLEAN)
    if prop.edm == DATETIME:
        try:
            return format_datetime(parse_datetime(str(value)))
        except ValueError:
            raise _bad_value(value, DATETIME) from None
    if prop.edm in (DOUBLE, INT64):
        try:
            parsed = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            parsed = None
        if parsed is None or not math.isfinite(parsed):
            raise _bad_value(value, prop.edm)
        if prop.edm == INT64:
            if parsed != int(parsed):
                raise _bad_value(value, prop.edm)
            return str(int(parsed))  # Int64 travels as a string in OData v3 JSON
        return number(parsed)
    if isinstance(value, dict | list):
        raise _internal("Произошла внутренняя ошибка OData сервиса")
    text = value if isinstance(value, str) else str(value)
    if prop.enum is not None and text and text not in ENUMS[prop.enum]:
        raise _bad_value(text, f"StandardODATA.{prop.enum}")
    return text


def _apply(
    entity: EntityType,
    row: dict[str, Any],
    body: dict[str, Any],
    row_types: dict[str, EntityType],
) -> None:
    """Write the properties ``body`` names into ``row``. Unknown names are ignored and the
    key, ``DataVersion`` and ``Posted`` are not writable, as in 1C (probe P8)."""
    for name, value in body.items():
        prop = entity.by_name.get(name)
        if prop is None or name in ("Ref_Key", "DataVersion", "Posted"):
            continue
        if prop.rows is None:
            row[name] = _coerce(prop, value)
            continue
        if not isinstance(value, list):
            raise _internal(f"Табличная часть {name}: ожидается массив строк")
        row_entity = row_types[prop.rows]
        lines = []
        for position, line in enumerate(value, start=1):
            if not isinstance(line, dict):
                raise _internal(f"Табличная часть {name}, строка {position}: ожидается объект")
            if line.get("LineNumber") in (None, ""):
                raise ODataError(
                    400,
                    "5",
                    f"Отсутствует обязательное значение свойства LineNumber (табличная часть "
                    f"{name}, строка {position})",
                )
            made = {p.name: _empty(p) for p in row_entity.props}
            for field_name, field_value in line.items():
                field_prop = row_entity.by_name.get(field_name)
                if field_prop is not None and field_name != "Ref_Key":
                    made[field_name] = _coerce(field_prop, field_value)
            made["Ref_Key"] = row["Ref_Key"]
            lines.append(made)
        row[name] = lines


def _total(order: dict[str, Any]) -> None:
    """УТ recomputes СуммаДокумента from the lines whenever an order is written."""
    order["СуммаДокумента"] = number(
        round(sum(float(line["Сумма"]) for line in order[ORDER_LINES]), 2)
    )


def _document_title(row: dict[str, Any]) -> str:
    moment = parse_datetime(row["Date"])
    stamp = f"{moment:%d.%m.%Y} {moment.hour}:{moment:%M:%S}"
    return f'"Заказ клиента {row["Number"]} от {stamp}"'

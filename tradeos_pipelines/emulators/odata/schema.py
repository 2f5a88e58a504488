"""The emulated configuration: which objects exist and how the OData interface types them.

A configuration *object* (``Catalog_Номенклатура``, ``AccumulationRegister_СвободныеОстатки``)
is what an administrator publishes; it brings one or more entity sets (a document's tabular
part, a register's ``_RecordType``), complex types (``_RowType``, ``_Balance``) and bound
functions (``Post``, ``SliceLast``, ``Balance``). The shapes follow a real УТ 11.5 ``$metadata``
(see ``shared/contracts/onec-odata.md``); only the properties a trade integration reads are
declared, in the order the emulator also writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"

GUID = "Edm.Guid"
STRING = "Edm.String"
BOOLEAN = "Edm.Boolean"
DATETIME = "Edm.DateTime"
DOUBLE = "Edm.Double"
INT64 = "Edm.Int64"

ORDER_STATUSES = ("НеСогласован", "КОбеспечению", "КОтгрузке", "Закрыт")
ENUMS = {
    "СтатусыЗаказовКлиентов": ORDER_STATUSES,
    "ТипыНоменклатуры": ("Товар", "Услуга", "Работа", "МногооборотнаяТара", "Набор"),
    "ВидыДвиженийНакопления": ("Receipt", "Expense"),
}


@dataclass(frozen=True)
class Prop:
    """One property of an entity or complex type.

    ``target`` names the object a ``…_Key`` reference points at (its navigation property is
    declared when that object is published); ``enum`` the enumeration a string holds; ``rows``
    the row type of a tabular part or record set.
    """

    name: str
    edm: str
    nullable: bool = True
    target: str | None = None
    enum: str | None = None
    rows: str | None = None

    @property
    def type_name(self) -> str:
        """The ``Type`` attribute ``$metadata`` gives it."""
        return f"Collection(StandardODATA.{self.rows})" if self.rows else self.edm


@dataclass(frozen=True)
class EntityType:
    """An entity or complex type: ordered properties and, for entities, the key."""

    name: str
    props: tuple[Prop, ...]
    keys: tuple[str, ...] = ()
    by_name: dict[str, Prop] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {p.name: p for p in self.props})

    @property
    def names(self) -> tuple[str, ...]:
        """Property names in declared order."""
        return tuple(p.name for p in self.props)


@dataclass(frozen=True)
class Function:
    """A function bound to an entity type: a register's virtual table or a document action."""

    name: str
    binding: str
    params: tuple[tuple[str, str], ...]
    returns: str | None = None  # None: an action (Post, Unpost) with no result
    side_effects: bool = False


@dataclass(frozen=True)
class MetaObject:
    """A configuration object as published: its entity sets, complex types and functions."""

    name: str
    kind: str  # catalog | document | information_register | accumulation_register
    entities: tuple[EntityType, ...]
    complex_types: tuple[EntityType, ...] = ()
    functions: tuple[Function, ...] = ()

    @property
    def main(self) -> EntityType:
        """The object's own entity type (the catalog, the document, the record set)."""
        return self.entities[0]


def _ref(name: str, target: str | None = None) -> Prop:
    return Prop(name, GUID, target=target)


def _catalog(name: str, *extra: Prop, hierarchical: bool = False) -> MetaObject:
    props = [Prop("Ref_Key", GUID, nullable=False), Prop("DataVersion", STRING)]
    props.append(Prop("DeletionMark", BOOLEAN))
    if hierarchical:
        props += [_ref("Parent_Key", name), Prop("IsFolder", BOOLEAN)]
    props += [Prop("Code", STRING), Prop("Description", STRING), *extra]
    props += [Prop("Predefined", BOOLEAN), Prop("PredefinedDataName", STRING)]
    return MetaObject(name, "catalog", (EntityType(name, tuple(props), ("Ref_Key",)),))


GOODS = "Catalog_Номенклатура"
UNITS = "Catalog_УпаковкиЕдиницыИзмерения"
VAT_RATES = "Catalog_СтавкиНДС"
WAREHOUSES = "Catalog_Склады"
PRICE_TYPES = "Catalog_ВидыЦен"
GOODS_KINDS = "Catalog_ВидыНоменклатуры"
CUSTOMERS = "Catalog_Контрагенты"
ORDERS = "Document_ЗаказКлиента"
ORDER_LINES = "Товары"
BARCODES = "InformationRegister_ШтрихкодыУпаковокТоваров"
STOCK = "AccumulationRegister_СвободныеОстатки"
PRICE_REGISTERS = ("ЦеныНоменклатуры25", "ЦеныНоменклатуры")  # УТ 11.5, УТ 11.4

STOCK_DIMENSIONS = ("Номенклатура", "Характеристика", "Склад")
STOCK_RESOURCES = ("ВНаличии", "ВРезервеСоСклада", "ВРезервеПодЗаказ")


def _orders() -> MetaObject:
    row_props = (
        Prop("Ref_Key", GUID, nullable=False),
        Prop("LineNumber", INT64, nullable=False),
        _ref("Номенклатура_Key", GOODS),
        Prop("Количество", DOUBLE),
        Prop("Цена", DOUBLE),
        Prop("Сумма", DOUBLE),
    )
    row_type = f"{ORDERS}_{ORDER_LINES}_RowType"
    document = EntityType(
        ORDERS,
        (
            Prop("Ref_Key", GUID, nullable=False),
            Prop("DataVersion", STRING),
            Prop("DeletionMark", BOOLEAN),
            Prop("Number", STRING),
            Prop("Date", DATETIME),
            Prop("Posted", BOOLEAN),
            Prop("Статус", STRING, enum="СтатусыЗаказовКлиентов"),
            Prop("СуммаДокумента", DOUBLE),
            Prop("Комментарий", STRING),
            Prop("НомерПоДаннымКлиента", STRING),
            _ref("Контрагент_Key", CUSTOMERS),
            _ref("Склад_Key", WAREHOUSES),
            Prop(ORDER_LINES, STRING, nullable=False, rows=row_type),
        ),
        ("Ref_Key",),
    )
    lines = EntityType(f"{ORDERS}_{ORDER_LINES}", row_props, ("Ref_Key", "LineNumber"))
    actions = tuple(
        Function(name, ORDERS, (("PostingModeOperational", BOOLEAN),), side_effects=True)
        for name in ("Post", "Unpost")
    )
    return MetaObject(
        ORDERS, "document", (document, lines), (EntityType(row_type, row_props),), actions
    )


def _barcodes() -> MetaObject:
    props = (
        Prop("Штрихкод", STRING, nullable=False),
        _ref("Номенклатура_Key", GOODS),
        _ref("Характеристика_Key"),
        _ref("Упаковка_Key", UNITS),
    )
    return MetaObject(
        BARCODES, "information_register", (EntityType(BARCODES, props, ("Штрихкод",)),)
    )


def price_register_name(register: str) -> str:
    """``InformationRegister_ЦеныНоменклатуры25`` for ``ЦеныНоменклатуры25``."""
    if register not in PRICE_REGISTERS:
        raise ValueError(f"price register must be one of {', '.join(PRICE_REGISTERS)}")
    return f"InformationRegister_{register}"


def _prices(register: str) -> MetaObject:
    """A periodic information register subordinate to a recorder (УстановкаЦенНоменклатуры)."""
    name = price_register_name(register)
    props = (
        _ref("Recorder_Key"),
        Prop("Period", DATETIME),
        Prop("LineNumber", INT64),
        Prop("Active", BOOLEAN),
        _ref("ВидЦены_Key", PRICE_TYPES),
        _ref("Номенклатура_Key", GOODS),
        _ref("Характеристика_Key"),
        Prop("Цена", DOUBLE),
        _ref("Упаковка_Key", UNITS),
        _ref("Валюта_Key"),
    )
    record = f"{name}_RecordType"
    record_set = EntityType(
        name,
        (
            Prop("Recorder_Key", GUID, nullable=False),
            Prop("RecordSet", STRING, nullable=False, rows=f"{name}_RowType"),
        ),
        ("Recorder_Key",),
    )
    slices = tuple(
        Function(
            slice_name,
            record,
            (("Condition", STRING), ("Period", DATETIME)),
            returns=f"Collection(StandardODATA.{record})",
        )
        for slice_name in ("SliceLast", "SliceFirst")
    )
    return MetaObject(
        name,
        "information_register",
        (record_set, EntityType(record, props, ("Recorder_Key", "LineNumber"))),
        (EntityType(f"{name}_RowType", props),),
        slices,
    )


def _stock() -> MetaObject:
    """An accumulation register of balances with many recorder types (``Recorder_Type``)."""
    dims = tuple(_ref(f"{d}_Key", _DIMENSION_TARGETS[d]) for d in STOCK_DIMENSIONS)
    movement = (
        Prop("Recorder", STRING, nullable=False),
        Prop("Period", DATETIME),
        Prop("LineNumber", INT64, nullable=False),
        Prop("Active", BOOLEAN),
        Prop("RecordType", STRING, enum="ВидыДвиженийНакопления"),
        *dims,
        *(Prop(r, DOUBLE) for r in STOCK_RESOURCES),
        Prop("Recorder_Type", STRING, nullable=False),
    )
    balance = EntityType(
        f"{STOCK}_Balance", (*dims, *(Prop(f"{r}Balance", DOUBLE) for r in STOCK_RESOURCES))
    )
    record_set = EntityType(
        STOCK,
        (
            Prop("Recorder", STRING, nullable=False),
            Prop("RecordSet", STRING, nullable=False, rows=f"{STOCK}_RowType"),
            Prop("Recorder_Type", STRING, nullable=False),
        ),
        ("Recorder", "Recorder_Type"),
    )
    records = EntityType(
        f"{STOCK}_RecordType", movement, ("Recorder", "LineNumber", "Recorder_Type")
    )
    function = Function(
        "Balance",
        STOCK,
        (("Condition", STRING), ("Dimensions", STRING), ("Period", DATETIME)),
        returns=f"Collection(StandardODATA.{balance.name})",
    )
    return MetaObject(
        STOCK,
        "accumulation_register",
        (record_set, records),
        (EntityType(f"{STOCK}_RowType", movement), balance),
        (function,),
    )


_DIMENSION_TARGETS = {"Номенклатура": GOODS, "Характеристика": None, "Склад": WAREHOUSES}


def build_objects(price_register: str) -> dict[str, MetaObject]:
    """Every object of the emulated configuration, by name, in ``$metadata`` order."""
    objects = [
        _catalog(
            GOODS,
            Prop("Артикул", STRING),
            Prop("НаименованиеПолное", STRING),
            _ref("ЕдиницаИзмерения_Key", UNITS),
            _ref("СтавкаНДС_Key", VAT_RATES),
            _ref("ВидНоменклатуры_Key", GOODS_KINDS),
            hierarchical=True,
        ),
        _catalog(UNITS, Prop("НаименованиеПолное", STRING)),
        _catalog(VAT_RATES, Prop("Ставка", DOUBLE)),
        _catalog(WAREHOUSES),
        _catalog(PRICE_TYPES),
        _catalog(GOODS_KINDS, Prop("ТипНоменклатуры", STRING, enum="ТипыНоменклатуры")),
        _catalog(CUSTOMERS, Prop("НаименованиеПолное", STRING), Prop("ИНН", STRING)),
        _orders(),
        _barcodes(),
        _prices(price_register),
        _stock(),
    ]
    return {o.name: o for o in objects}

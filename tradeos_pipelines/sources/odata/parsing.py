"""OData JSON rows → the typed rows of :mod:`tradeos_pipelines.sources.common.rows`.

1C's values are read with :mod:`tradeos_pipelines.sources.common.values`: a zero GUID is no
reference, ``0001-01-01T00:00:00`` no date, datetimes are 1C local time made aware in the
integration's zone, numbers are JSON numbers (``Edm.Double``). A row that cannot be read
becomes a :class:`RejectedRow` naming the field; the rest of the page still parses.

A good's ``version`` is its ``DataVersion`` followed by a digest of what TradeOS reads from
other objects (price, barcodes, unit and VAT names): a price set in 1C does not change the
good's ``DataVersion``, yet the engine must see the row as changed. :func:`same_data_version`
compares only the ``DataVersion`` part, which is what the cheap change-detection pass reads.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from datetime import tzinfo
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import orjson

from tradeos_pipelines.sources.common.errors import OneCProtocolError, describe_body
from tradeos_pipelines.sources.common.rows import (
    NomenclatureItem,
    OneCOrder,
    Page,
    RejectedRow,
    StockRow,
)
from tradeos_pipelines.sources.common.values import (
    ZERO_GUID,
    RowError,
    flag,
    parse_decimal,
    parse_guid,
    parse_local_datetime,
    strip_bom,
    text,
)

T = TypeVar("T")


def decode_json(body: bytes, what: str) -> Any:
    """A JSON body; :class:`OneCProtocolError` quoting it when it is not JSON."""
    try:
        return orjson.loads(strip_bom(body))
    except orjson.JSONDecodeError as exc:
        problem = "an empty body" if not body.strip() else f"not valid JSON ({exc})"
        raise OneCProtocolError(
            f"1C answered {what} with {problem}: {describe_body(body)}",
            excerpt=describe_body(body),
        ) from None


def decode_rows(body: bytes, what: str) -> list[dict[str, Any]]:
    """The ``value`` list of an OData collection answer."""
    data = decode_json(body, what)
    if not isinstance(data, dict) or not isinstance(data.get("value"), list):
        shape = f"keys {sorted(data)[:8]}" if isinstance(data, dict) else type(data).__name__
        raise OneCProtocolError(
            f"1C answered {what} without a 'value' list ({shape}): {describe_body(body)}",
            excerpt=describe_body(body),
        )
    return data["value"]


def odata_error(body: bytes) -> tuple[str | None, str]:
    """1C's error code and message from an ``odata.error`` body; ``(None, excerpt)`` else."""
    try:
        data = orjson.loads(strip_bom(body))
    except orjson.JSONDecodeError:
        return None, describe_body(body)
    error = data.get("odata.error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, describe_body(body)
    message = error.get("message")
    if isinstance(message, dict):
        message = message.get("value")
    code = error.get("code")
    return (
        str(code) if code is not None else None,
        message if isinstance(message, str) and message else describe_body(body),
    )


def same_data_version(stored: str | None, data_version: str) -> bool:
    """Whether a stored ``version`` was made from this ``DataVersion``."""
    return stored is not None and stored.split(":", 1)[0] == data_version


def _version(
    data_version: str | None,
    price: Decimal | None,
    barcodes: tuple[str, ...],
    unit: str | None,
    vat: str | None,
) -> str | None:
    if data_version is None:
        return None
    joined = f"{price}\x1f{chr(30).join(barcodes)}\x1f{unit}\x1f{vat}".encode()
    return f"{data_version}:{hashlib.blake2b(joined, digest_size=8).hexdigest()}"


def _field(raw: Mapping[str, Any], name: str, convert: Callable[[Any], T]) -> T:
    try:
        return convert(raw.get(name))
    except ValueError as exc:
        raise RowError(name, str(exc)) from None


def _required_guid(raw: Mapping[str, Any], name: str) -> UUID:
    if raw.get(name) in (None, ""):
        raise RowError(name, "missing")
    value = _field(raw, name, parse_guid)
    if value is None:
        raise RowError(name, "is the zero GUID (no reference)")
    return value


def _number(raw: Mapping[str, Any], name: str) -> Decimal:
    value = _field(raw, name, parse_decimal)
    return Decimal(0) if value is None else value


def _reject(raw: Any, reason: str, id_field: str) -> RejectedRow:
    onec_id = raw.get(id_field) if isinstance(raw, dict) else None
    return RejectedRow(
        payload=raw, reason=reason, onec_id=str(onec_id) if onec_id is not None else None
    )


# Goods share a few thousand folders: each folder's key is parsed once per process, not once per
# good (UUID() was the costliest step of reading a row).
@functools.lru_cache(maxsize=1 << 16)
def _folder_key(key: str) -> UUID:
    return UUID(key)


def _page(rows: list[Any], parse: Callable[[dict[str, Any]], T], id_field: str) -> Page[T]:
    items: list[T] = []
    rejected: list[RejectedRow] = []
    for raw in rows:
        try:
            if not isinstance(raw, dict):
                raise RowError("row", f"expected a JSON object, got {type(raw).__name__}")
            items.append(parse(raw))
        except ValueError as exc:
            rejected.append(_reject(raw, str(exc), id_field))
    return Page(items=items, rejected=rejected)


class GoodsParser:
    """``Catalog_Номенклатура`` rows with the names, barcodes and prices they refer to."""

    def __init__(
        self,
        units: Mapping[str, str],
        vat_rates: Mapping[str, str],
        barcodes: Mapping[str, list[str]],
        prices: Mapping[str, Decimal],
    ) -> None:
        self.units = units
        self.vat_rates = vat_rates
        self.barcodes = barcodes
        self.prices = prices

    def page(self, rows: list[Any], total: int | None = None) -> Page[NomenclatureItem]:
        page = _page(rows, self.item, "Ref_Key")
        page.total = total
        return page

    def item(self, raw: dict[str, Any]) -> NomenclatureItem:
        """One good or folder; a row the fast path cannot take is read field by field, so
        its error names the field."""
        try:
            return self._fast(raw)
        except (KeyError, TypeError, ValueError):
            return self._careful(raw)

    def _fast(self, raw: dict[str, Any]) -> NomenclatureItem:
        """The usual row: every field present and of its declared type (no checks repeated
        per field; ~4x cheaper than :meth:`_careful`)."""
        key, parent = raw["Ref_Key"], raw["Parent_Key"]
        name, is_folder, deleted = raw["Description"], raw["IsFolder"], raw["DeletionMark"]
        code, data_version = raw["Code"], raw["DataVersion"]
        article, full_name = raw["Артикул"], raw["НаименованиеПолное"]
        if (
            key == ZERO_GUID
            or type(name) is not str
            or type(is_folder) is not bool
            or type(deleted) is not bool
            or type(code) is not str
            or type(data_version) is not str
            or type(article) is not str
            or type(full_name) is not str
            or (not is_folder and not name.strip())
        ):
            raise ValueError("not the usual row")
        unit = self.units.get(raw["ЕдиницаИзмерения_Key"])
        vat = self.vat_rates.get(raw["СтавкаНДС_Key"])
        barcodes = tuple(self.barcodes.get(key, ()))
        price = None if is_folder else self.prices.get(key)
        return NomenclatureItem(
            id=UUID(key),
            code=code,
            article=article or None,
            name=name,
            full_name=full_name or None,
            unit=unit,
            group_id=None if parent == ZERO_GUID else _folder_key(parent),
            is_folder=is_folder,
            barcodes=barcodes,
            price=price,
            vat=vat,
            deleted=deleted,
            version=_version(data_version, price, barcodes, unit, vat),
            modified_at=None,
        )

    def _careful(self, raw: dict[str, Any]) -> NomenclatureItem:
        item_id = _required_guid(raw, "Ref_Key")
        key = str(item_id)
        is_folder = _field(raw, "IsFolder", flag)
        name = _field(raw, "Description", text)
        if not is_folder and not (name or "").strip():
            raise RowError("Description", "missing (required for an item that is not a folder)")
        unit = self.units.get(str(_field(raw, "ЕдиницаИзмерения_Key", parse_guid)))
        vat = self.vat_rates.get(str(_field(raw, "СтавкаНДС_Key", parse_guid)))
        barcodes = tuple(self.barcodes.get(key, ()))
        price = None if is_folder else self.prices.get(key)
        data_version = _field(raw, "DataVersion", text)
        return NomenclatureItem(
            id=item_id,
            code=_field(raw, "Code", text),
            article=_field(raw, "Артикул", text) or None,
            name=name,
            full_name=_field(raw, "НаименованиеПолное", text) or None,
            unit=unit,
            group_id=_field(raw, "Parent_Key", parse_guid),
            is_folder=is_folder,
            barcodes=barcodes,
            price=price,
            vat=vat,
            deleted=_field(raw, "DeletionMark", flag),
            version=_version(data_version, price, barcodes, unit, vat),
            modified_at=None,  # catalog items carry no modification time in OData
        )


def parse_stock(rows: list[Any], warehouses: Mapping[str, str]) -> Page[StockRow]:
    """``СвободныеОстатки/Balance`` rows: in stock, reserved from stock, free = the difference."""

    def row(raw: dict[str, Any]) -> StockRow:
        warehouse_id = _required_guid(raw, "Склад_Key")
        quantity = _number(raw, "ВНаличииBalance")
        reserved = _number(raw, "ВРезервеСоСкладаBalance")
        return StockRow(
            product_id=_required_guid(raw, "Номенклатура_Key"),
            warehouse_id=warehouse_id,
            warehouse_name=warehouses.get(str(warehouse_id)),
            quantity=quantity,
            reserved=reserved,
            available=quantity - reserved,
            modified_at=None,  # a balance is a snapshot as of the call
        )

    return _page(rows, row, "Номенклатура_Key")


def parse_orders(rows: list[Any], zone: tzinfo) -> Page[OneCOrder]:
    """``Document_ЗаказКлиента`` rows; ``external_id`` is the TradeOS id TradeOS wrote into
    ``НомерПоДаннымКлиента`` (another text there is an order TradeOS did not send)."""

    def row(raw: dict[str, Any]) -> OneCOrder:
        number = _field(raw, "Number", text)
        if not number:
            raise RowError("Number", "missing")
        status = _field(raw, "Статус", text)
        if _field(raw, "DeletionMark", flag):
            status = "ПомеченНаУдаление"
        if not status:
            raise RowError("Статус", "missing")
        try:
            external_id = parse_guid(raw.get("НомерПоДаннымКлиента"))
        except ValueError:
            external_id = None
        return OneCOrder(
            id=_required_guid(raw, "Ref_Key"),
            number=number.strip(),
            external_id=external_id,
            status=status,
            date=_field(raw, "Date", lambda v: parse_local_datetime(v, zone)),
            total=_field(raw, "СуммаДокумента", parse_decimal),
            modified_at=None,  # documents carry no modification time in OData
        )

    return _page(rows, row, "Ref_Key")


def names_of(rows: list[Any]) -> dict[str, str]:
    """``{Ref_Key: Description}`` of a catalog's rows."""
    return {
        str(r["Ref_Key"]): str(r.get("Description") or "")
        for r in rows
        if isinstance(r, dict) and r.get("Ref_Key")
    }

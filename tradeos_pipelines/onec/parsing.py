"""Turning 1C's answers into typed rows: every quirk of the contract is handled here, once.

- a UTF-8 byte-order mark before the JSON;
- the empty date ``0001-01-01T00:00:00`` → ``None``; the zero GUID → ``None``;
- numbers as JSON numbers or ``Формат()`` strings: ``"1234.50"``, ``"1 234,50"`` with a
  no-break space (U+00A0), a narrow no-break space or a space between thousands;
- naive 1C local datetimes → aware datetimes in the integration's zone, and back (for
  ``changed_since``).

A page parses row by row: a bad row becomes a :class:`RejectedRow` naming the field and what
is wrong, and the rest of the page still parses. A body that is not the contract's envelope
(HTML, truncated JSON, no ``items`` list) raises :class:`OneCProtocolError`: never an empty
page.

Speed: rows that look clean go through a fast path (plain conversions, no per-field error
bookkeeping, models built without re-validation); anything unusual, including every quirk,
falls back to the careful path, which either parses it or says what is wrong. Both paths give
the same result for the same row (a property test checks this).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from uuid import UUID

import orjson
from pydantic import BaseModel

from tradeos_pipelines.onec.errors import OneCProtocolError, describe_body
from tradeos_pipelines.onec.models import (
    NomenclatureItem,
    OneCOrder,
    Page,
    RejectedRow,
    StockRow,
)

M = TypeVar("M", bound=BaseModel)

BOM = b"\xef\xbb\xbf"
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"
# Thousands separators 1C's Формат() uses: no-break space, narrow no-break space, space.
_THOUSANDS = str.maketrans("", "", "\u00a0\u202f ")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}([\u00a0\u202f ]\d{3})*([.,]\d+)?")
_CACHE_LIMIT = 50_000


class RowError(ValueError):
    """One field of a row is wrong: ``str()`` is ``"<field>: <what is wrong>"``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


# ----- single values -----------------------------------------------------------------------
def strip_bom(body: bytes) -> bytes:
    """The body without a leading UTF-8 byte-order mark."""
    return body[3:] if body.startswith(BOM) else body


def parse_decimal(value: Any) -> Decimal | None:
    """A 1C number (JSON number or ``Формат()`` string) as ``Decimal``; ``None`` for null/"".

    Raises ``ValueError`` saying what is wrong (``'abc' is not a number``).
    """
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        return Decimal(value)
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not a finite number")
        return Decimal(repr(value))
    if kind is not str:
        raise ValueError(f"{value!r} is not a number")
    text = value.strip()
    if text == "":
        return None
    if _GROUPED_NUMBER.fullmatch(text):
        text = text.translate(_THOUSANDS).replace(",", ".")
    elif not _PLAIN_NUMBER.fullmatch(text):
        raise ValueError(f"{value!r} is not a number")
    try:
        return Decimal(text)
    except InvalidOperation:  # the patterns above should make this unreachable
        raise ValueError(f"{value!r} is not a number") from None


def parse_guid(value: Any) -> UUID | None:
    """A 1C reference as ``UUID``; ``None`` for null, "" and the zero GUID."""
    if value is None or value == "" or value == ZERO_GUID:
        return None
    if type(value) is not str:
        raise ValueError(f"{value!r} is not a GUID")
    try:
        return UUID(value)
    except ValueError:
        raise ValueError(f"{_short(value)!r} is not a GUID") from None


def parse_local_datetime(value: Any, zone: tzinfo) -> datetime | None:
    """A 1C datetime (local, no zone) as an aware datetime in ``zone``; ``None`` if empty."""
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise ValueError(f"{value!r} is not a date")
    if value.startswith("0001-01-01"):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{_short(value)!r} is not a date (YYYY-MM-DDTHH:MM:SS)") from None
    if moment.tzinfo is not None:
        return moment.astimezone(zone)
    return moment.replace(tzinfo=zone)


def to_onec_local(moment: datetime, zone: tzinfo) -> str:
    """An aware datetime as 1C local time ``YYYY-MM-DDTHH:MM:SS[.fff]`` in ``zone``.

    Sub-millisecond digits are dropped (rounding down): asking for a slightly earlier time
    re-reads at most a row already seen, never skips one.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"changed_since must be timezone-aware, got naive {moment.isoformat()}")
    local = moment.astimezone(zone).replace(tzinfo=None)
    if local.microsecond // 1000:
        return local.isoformat(timespec="milliseconds")
    return local.isoformat(timespec="seconds")


def _short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[:limit] + "…"


def _text(value: Any) -> str | None:
    """Strings as is; numbers as text (1C sends numeric codes as numbers)."""
    if value is None or type(value) is str:
        return value
    if type(value) in (int, float):
        return str(value)
    raise ValueError(f"{value!r} is not text")


def _flag(value: Any) -> bool:
    if value is None:
        return False
    if type(value) is bool:
        return value
    raise ValueError(f"{value!r} is not true/false")


def _build(cls: type[M], values: dict[str, Any]) -> M:
    """Make a frozen row model from values already checked, skipping re-validation.

    ``values`` holds every field of ``cls``; this does what ``model_construct`` does without
    its per-field default handling, which costs more than the parsing itself.
    """
    row = cls.__new__(cls)
    _set(row, "__dict__", values)
    _set(row, "__pydantic_fields_set__", set(values))
    _set(row, "__pydantic_extra__", None)
    _set(row, "__pydantic_private__", None)
    return row


_set = object.__setattr__


# ----- rows ---------------------------------------------------------------------------------
class RowParser:
    """Parses the rows of one entity for one integration's time zone.

    Keeps small caches of timestamps and references that repeat across rows (a bulk edit in
    1C stamps many rows with the same second; many goods share a group or a warehouse).
    """

    entity: str
    model: type[BaseModel]
    id_field: str

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._dates: dict[str, datetime | None] = {}
        self._refs: dict[Any, UUID | None] = {None: None, "": None, ZERO_GUID: None}

    def parse_page(self, envelope: dict[str, Any]) -> Page[Any]:
        """The envelope's rows parsed (bad ones rejected) with its paging fields."""
        items: list[Any] = []
        rejected: list[RejectedRow] = []
        fast = self.fast
        for raw in envelope["items"]:
            try:
                items.append(fast(raw))
            except Exception:  # anything unusual takes the careful path
                try:
                    items.append(self.careful(raw))
                except ValueError as exc:
                    rejected.append(self.reject(raw, str(exc)))
        if len(self._dates) > _CACHE_LIMIT:
            self._dates.clear()
        if len(self._refs) > _CACHE_LIMIT:
            self._refs = {None: None, "": None, ZERO_GUID: None}
        return Page[self.model].model_construct(  # type: ignore[name-defined]
            items=items,
            rejected=rejected,
            next_cursor=envelope["next_cursor"],
            total=envelope["total"],
        )

    def reject(self, raw: Any, reason: str) -> RejectedRow:
        onec_id = raw.get(self.id_field) if isinstance(raw, dict) else None
        return RejectedRow(
            payload=raw, reason=reason, onec_id=str(onec_id) if onec_id is not None else None
        )

    # Shared helpers of the fast paths: exceptions send the row to the careful path.
    def _date(self, value: Any) -> datetime | None:
        try:
            return self._dates[value]
        except KeyError:
            parsed = parse_local_datetime(value, self.zone)
            self._dates[value] = parsed
            return parsed

    def _ref(self, value: Any) -> UUID | None:
        try:
            return self._refs[value]
        except KeyError:
            parsed = parse_guid(value)
            self._refs[value] = parsed
            return parsed

    def fast(self, raw: dict[str, Any]) -> Any:
        raise NotImplementedError

    def careful(self, raw: Any) -> Any:
        raise NotImplementedError

    # The careful path's field readers: each names the field in its error.
    @staticmethod
    def _field(raw: dict[str, Any], name: str, convert: Callable[[Any], Any]) -> Any:
        try:
            return convert(raw.get(name))
        except ValueError as exc:
            raise RowError(name, str(exc)) from None

    def _required_guid(self, raw: dict[str, Any], name: str) -> UUID:
        if raw.get(name) in (None, ""):
            raise RowError(name, "missing")
        value = self._field(raw, name, parse_guid)
        if value is None:
            raise RowError(name, "is the zero GUID (no reference)")
        return value

    def _required_number(self, raw: dict[str, Any], name: str) -> Decimal:
        value = self._field(raw, name, parse_decimal)
        if value is None:
            raise RowError(name, "missing")
        return value

    def _when(self, raw: dict[str, Any], name: str) -> datetime | None:
        return self._field(raw, name, lambda v: parse_local_datetime(v, self.zone))


def _must_be_object(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RowError("row", f"expected a JSON object, got {type(raw).__name__}")
    return raw


class NomenclatureParser(RowParser):
    entity = "nomenclature"
    model = NomenclatureItem
    id_field = "id"

    def fast(self, raw: dict[str, Any]) -> NomenclatureItem:
        item_id = UUID(raw["id"])
        is_folder = raw["is_folder"]
        deleted = raw["deleted"]
        name = raw["name"]
        price = raw["price"]
        barcodes = raw["barcodes"]
        code, article, full_name = raw["code"], raw["article"], raw["full_name"]
        unit, vat, version = raw["unit"], raw["vat"], raw["version"]
        if (
            not item_id.int
            or is_folder.__class__ is not bool
            or deleted.__class__ is not bool
            or name.__class__ is not str
            or not (name or is_folder)
            or barcodes.__class__ is not list
            or code.__class__ is not str
            or article.__class__ is not str
            or full_name.__class__ is not str
            or unit.__class__ is not str
            or vat.__class__ is not str
            or version.__class__ is not str
        ):
            raise ValueError("not plain")  # folders (null unit, price) take the careful path
        kind = price.__class__
        if kind is float:
            price = Decimal(repr(price))
        elif kind is int:
            price = Decimal(price)
        else:
            raise ValueError("not plain")
        for barcode in barcodes:
            if barcode.__class__ is not str or not barcode:
                raise ValueError("not plain")
        return _build(
            NomenclatureItem,
            {
                "id": item_id,
                "code": code,
                "article": article,
                "name": name,
                "full_name": full_name,
                "unit": unit,
                "group_id": self._ref(raw["group_id"]),
                "is_folder": is_folder,
                "barcodes": tuple(barcodes),
                "price": price,
                "vat": vat,
                "deleted": deleted,
                "version": version,
                "modified_at": self._date(raw["modified_at"]),
            },
        )

    def careful(self, raw: Any) -> NomenclatureItem:
        raw = _must_be_object(raw)
        item_id = self._required_guid(raw, "id")
        is_folder = self._field(raw, "is_folder", _flag)
        name = self._field(raw, "name", _text)
        if not is_folder and not (name or "").strip():
            raise RowError("name", "missing (required for an item that is not a folder)")
        barcodes = raw.get("barcodes")
        if barcodes is None:
            barcodes = []
        if not isinstance(barcodes, list):
            raise RowError("barcodes", f"expected a list, got {_short(repr(barcodes))}")
        try:
            codes = tuple(_text(b) for b in barcodes if b not in (None, ""))
        except ValueError as exc:
            raise RowError("barcodes", str(exc)) from None
        return _build(
            NomenclatureItem,
            {
                "id": item_id,
                "code": self._field(raw, "code", _text),
                "article": self._field(raw, "article", _text),
                "name": name,
                "full_name": self._field(raw, "full_name", _text),
                "unit": self._field(raw, "unit", _text),
                "group_id": self._field(raw, "group_id", parse_guid),
                "is_folder": is_folder,
                "barcodes": codes,
                "price": self._field(raw, "price", parse_decimal),
                "vat": self._field(raw, "vat", _text),
                "deleted": self._field(raw, "deleted", _flag),
                "version": self._field(raw, "version", _text),
                "modified_at": self._when(raw, "modified_at"),
            },
        )


class StockParser(RowParser):
    entity = "stock"
    model = StockRow
    id_field = "product_id"

    def fast(self, raw: dict[str, Any]) -> StockRow:
        product_id = UUID(raw["product_id"])
        warehouse_id = self._ref(raw["warehouse_id"])
        quantity, reserved, available = raw["quantity"], raw["reserved"], raw["available"]
        name = raw["warehouse_name"]
        if (
            not product_id.int
            or warehouse_id is None
            or name.__class__ is not str
            or quantity.__class__ not in (int, float)
            or reserved.__class__ not in (int, float)
            or available.__class__ not in (int, float)
        ):
            raise ValueError("not plain")
        return _build(
            StockRow,
            {
                "product_id": product_id,
                "warehouse_id": warehouse_id,
                "warehouse_name": name,
                "quantity": parse_decimal(quantity),
                "reserved": parse_decimal(reserved),
                "available": parse_decimal(available),
                "modified_at": self._date(raw["modified_at"]),
            },
        )

    def careful(self, raw: Any) -> StockRow:
        raw = _must_be_object(raw)
        quantity = self._required_number(raw, "quantity")
        reserved = self._field(raw, "reserved", parse_decimal) or Decimal(0)
        available = self._field(raw, "available", parse_decimal)
        return _build(
            StockRow,
            {
                "product_id": self._required_guid(raw, "product_id"),
                "warehouse_id": self._required_guid(raw, "warehouse_id"),
                "warehouse_name": self._field(raw, "warehouse_name", _text),
                "quantity": quantity,
                "reserved": reserved,
                # Older publications omit it; it is what is left after reservations.
                "available": quantity - reserved if available is None else available,
                "modified_at": self._when(raw, "modified_at"),
            },
        )


class OrderParser(RowParser):
    entity = "orders"
    model = OneCOrder
    id_field = "id"

    def fast(self, raw: dict[str, Any]) -> OneCOrder:
        return self.careful(raw)  # orders are few; the careful path is fast enough

    def careful(self, raw: Any) -> OneCOrder:
        raw = _must_be_object(raw)
        number = self._field(raw, "number", _text)
        if not number:
            raise RowError("number", "missing")
        status = self._field(raw, "status", _text)
        if not status:
            raise RowError("status", "missing")
        return _build(
            OneCOrder,
            {
                "id": self._required_guid(raw, "id"),
                "number": number,
                "external_id": self._field(raw, "external_id", parse_guid),
                "status": status,
                "date": self._when(raw, "date"),
                "total": self._field(raw, "total", parse_decimal),
                "modified_at": self._when(raw, "modified_at"),
            },
        )


PARSERS: dict[str, type[RowParser]] = {
    "nomenclature": NomenclatureParser,
    "stock": StockParser,
    "orders": OrderParser,
}


# ----- whole bodies -------------------------------------------------------------------------
def decode_json(body: bytes, what: str) -> Any:
    """Decode a JSON body (BOM allowed); :class:`OneCProtocolError` quoting it if it is not."""
    try:
        return orjson.loads(strip_bom(body))
    except orjson.JSONDecodeError as exc:
        problem = "an empty body" if not body.strip() else f"not valid JSON ({exc})"
        raise OneCProtocolError(
            f"1C answered {what} with {problem}: {describe_body(body)}",
            excerpt=describe_body(body),
        ) from None


def decode_envelope(body: bytes, what: str) -> dict[str, Any]:
    """The list envelope ``{"items": [...], "next_cursor": ..., "total": ...}``, checked."""
    data = decode_json(body, what)
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        shape = f"keys {sorted(data)[:8]}" if isinstance(data, dict) else type(data).__name__
        raise OneCProtocolError(
            f"1C answered {what} without an 'items' list ({shape}): {describe_body(body)}",
            excerpt=describe_body(body),
        )
    cursor = data.get("next_cursor")
    if cursor == "":
        cursor = None
    if cursor is not None and not isinstance(cursor, str):
        raise OneCProtocolError(
            f"1C answered {what} with next_cursor {cursor!r}, expected a string or null",
            excerpt=describe_body(body),
        )
    total = data.get("total")
    if total is not None:
        try:
            total = int(total)
        except (TypeError, ValueError):
            raise OneCProtocolError(
                f"1C answered {what} with total {total!r}, expected a whole number",
                excerpt=describe_body(body),
            ) from None
    return {"items": data["items"], "next_cursor": cursor, "total": total}

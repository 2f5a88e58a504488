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

Speed: a page is first decoded by msgspec into typed wire rows (GUIDs, booleans and text
checked in C; JSON numbers as exact ``Decimal``), and each decoded row becomes a model's
``__dict__`` without re-validation; ``Формат()`` strings are parsed in Python on the way.
If any row is broken, the page is redone row by row on the careful path, which parses what
it can and says what is wrong with the rest. Both paths give the same result for the same
row (a property test checks this).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, NotRequired, TypedDict, TypeVar
from uuid import UUID

import msgspec
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


_set = object.__setattr__
_UNSEEN = object()
_FIELDS_SET: dict[type[BaseModel], set[str]] = {}


def _build(cls: type[M], values: dict[str, Any]) -> M:
    """Make a frozen row model from values already checked, skipping re-validation.

    ``values`` holds every field of ``cls``; this is ``model_construct`` without its per-field
    default handling, which costs more than the parsing itself. The fields-set is shared by
    all rows of a class: frozen models never change it, and pydantic copies it on
    ``model_copy``.
    """
    row = cls.__new__(cls)
    _set(row, "__dict__", values)
    fields = _FIELDS_SET.get(cls)
    if fields is None:
        fields = _FIELDS_SET[cls] = set(cls.model_fields)
    _set(row, "__pydantic_fields_set__", fields)
    _set(row, "__pydantic_extra__", None)
    _set(row, "__pydantic_private__", None)
    return row


# ----- rows ---------------------------------------------------------------------------------
class _Decline(Exception):
    """The quick path will not take this row; the careful path decides (internal)."""


@dataclass
class Decoded:
    """A page decoded but not yet turned into models: the cursor is known already."""

    rows: list[Any]
    next_cursor: str | None
    total: int | None
    body: bytes
    typed: bool  # rows were decoded as wire rows (quick path) rather than plain JSON


class RowParser:
    """Parses the pages of one entity for one integration's time zone.

    :meth:`decode` reads the body (typed, in C, by msgspec when the page is well formed;
    by orjson otherwise) and :meth:`build` makes the row models. Small caches keep
    timestamps and references that repeat across rows (a bulk edit in 1C stamps many rows
    with the same second; many goods share a group or a warehouse).
    """

    entity: str
    model: type[BaseModel]
    id_field: str
    wire: type | None = None  # a TypedDict of the row as 1C sends it

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._dates: dict[Any, datetime | None] = {}
        self._refs: dict[Any, UUID | None] = {None: None, "": None, ZERO_GUID: None}
        self._decoder = (
            msgspec.json.Decoder(_envelope_of(self.wire), float_hook=Decimal)
            if self.wire is not None
            else None
        )

    def decode(self, body: bytes, what: str) -> Decoded:
        """Decode a page body; :class:`OneCProtocolError` when it is not the envelope."""
        with _collection_paused():
            return self._decode(body, what)

    def _decode(self, body: bytes, what: str) -> Decoded:
        if self._decoder is not None:
            try:
                page = self._decoder.decode(strip_bom(body))
            except (msgspec.ValidationError, msgspec.DecodeError):
                pass  # a broken row or body: the plain path finds out which and says why
            else:
                return Decoded(page.items, page.next_cursor or None, page.total, body, True)
        envelope = decode_envelope(body, what)
        return Decoded(envelope["items"], envelope["next_cursor"], envelope["total"], body, False)

    def build(self, decoded: Decoded) -> Page[Any]:
        """The page's row models; rows that are wrong become :class:`RejectedRow`.

        Consumes ``decoded``: its rows become the models' attributes.
        """
        with _collection_paused():
            return self._build_page(decoded)

    def _build_page(self, decoded: Decoded) -> Page[Any]:
        if decoded.typed:
            try:
                items = [self.quick(row) for row in decoded.rows]
            except (_Decline, ValueError):
                # Some row needs the careful path; redo the page from plain dicts so a
                # rejected row carries exactly what 1C sent.
                rows = orjson.loads(strip_bom(decoded.body))["items"]
            else:
                return self._page(items, [], decoded)
        else:
            rows = decoded.rows
        items, rejected = [], []
        for raw in rows:
            try:
                items.append(self.careful(raw))
            except ValueError as exc:
                rejected.append(self.reject(raw, str(exc)))
        return self._page(items, rejected, decoded)

    def parse_body(self, body: bytes, what: str) -> Page[Any]:
        """``build(decode(body))``."""
        return self.build(self.decode(body, what))

    def parse_page(self, envelope: dict[str, Any]) -> Page[Any]:
        """A page from an already decoded envelope (plain dicts; the careful path)."""
        return self.build(
            Decoded(envelope["items"], envelope["next_cursor"], envelope["total"], b"", False)
        )

    def _page(self, items: list[Any], rejected: list[RejectedRow], decoded: Decoded) -> Page[Any]:
        if len(self._dates) > _CACHE_LIMIT:
            self._dates.clear()
        if len(self._refs) > _CACHE_LIMIT:
            self._refs = {None: None, "": None, ZERO_GUID: None}
        return _build(
            _page_class(self.model),
            {
                "items": items,
                "rejected": rejected,
                "next_cursor": decoded.next_cursor,
                "total": decoded.total,
            },
        )

    def reject(self, raw: Any, reason: str) -> RejectedRow:
        onec_id = raw.get(self.id_field) if isinstance(raw, dict) else None
        return RejectedRow(
            payload=raw, reason=reason, onec_id=str(onec_id) if onec_id is not None else None
        )

    # Shared helpers of the quick paths: errors send the page to the careful path.
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

    def quick(self, values: Any) -> Any:
        """A model from a decoded wire row, or :class:`_Decline` (only with ``wire``)."""
        raise NotImplementedError

    def careful(self, raw: Any) -> Any:
        """A model from a plain dict, or :class:`RowError` naming the field."""
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


@contextmanager
def _collection_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a page's rows are made.

    A page makes thousands of small acyclic objects; each burst of allocations would trigger
    collections that scan every object alive, which cost as much as the parsing itself.
    Nothing here makes cycles, so nothing is lost by collecting afterwards instead.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@cache
def _page_class(model: type[BaseModel]) -> type[Page[Any]]:
    """``Page[model]``, made once (pydantic's own lookup costs a millisecond a page)."""
    return Page[model]  # type: ignore[valid-type]


def _must_be_object(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RowError("row", f"expected a JSON object, got {type(raw).__name__}")
    return raw


def _envelope_of(wire: type) -> type[msgspec.Struct]:
    """The typed list envelope of a wire row type."""
    return msgspec.defstruct(
        f"{wire.__name__}Page",
        [
            ("items", list[wire]),  # type: ignore[valid-type]
            ("next_cursor", str | None, None),
            ("total", int | None, None),
        ],
        gc=False,
    )


# Wire rows as 1C sends them, decoded by msgspec straight into the dicts that become the
# models' ``__dict__``. Numbers are ``Any``: JSON numbers arrive as exact Decimal (the
# decoder's float_hook) or int, and ``Формат()`` strings as str, parsed in Python. A row
# missing a key, or with a value of another type, sends its page to the careful path.
class _WireItem(TypedDict):
    id: UUID
    code: str | None
    article: str | None
    name: str | None
    full_name: str | None
    unit: str | None
    group_id: str | None
    is_folder: bool
    barcodes: tuple[str, ...]
    price: Any
    vat: str | None
    deleted: bool
    version: str | None
    modified_at: str | None


class _WireStock(TypedDict):
    product_id: UUID
    warehouse_id: str
    warehouse_name: str | None
    quantity: Any
    reserved: NotRequired[Any]
    available: NotRequired[Any]
    modified_at: str | None


class NomenclatureParser(RowParser):
    entity = "nomenclature"
    model = NomenclatureItem
    id_field = "id"
    wire = _WireItem

    def quick(self, values: _WireItem) -> NomenclatureItem:
        name, is_folder = values["name"], values["is_folder"]
        if (
            not values["id"].int
            or not (is_folder or (name and not name.isspace()))
            or "" in values["barcodes"]
        ):
            raise _Decline
        price = values["price"]
        if price.__class__ is not Decimal:
            values["price"] = parse_decimal(price)
        group = self._refs.get(values["group_id"], _UNSEEN)
        values["group_id"] = self._ref(values["group_id"]) if group is _UNSEEN else group
        when = self._dates.get(values["modified_at"], _UNSEEN)
        values["modified_at"] = self._date(values["modified_at"]) if when is _UNSEEN else when
        return _build(NomenclatureItem, values)

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
    wire = _WireStock

    def quick(self, values: _WireStock) -> StockRow:
        warehouse_id = self._ref(values["warehouse_id"])
        quantity = values["quantity"]
        reserved = values.get("reserved")
        available = values.get("available")
        if not values["product_id"].int or warehouse_id is None or quantity is None:
            raise _Decline
        if quantity.__class__ is not Decimal:
            quantity = parse_decimal(quantity)
        if reserved.__class__ is not Decimal:
            reserved = parse_decimal(reserved) or Decimal(0)
        if available.__class__ is not Decimal:
            available = parse_decimal(available)
            if available is None:
                available = quantity - reserved
        values["warehouse_id"] = warehouse_id
        values["quantity"], values["reserved"], values["available"] = quantity, reserved, available
        values["modified_at"] = self._date(values["modified_at"])
        return _build(StockRow, values)

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
    """Orders are few per page; the careful path alone is fast enough."""

    entity = "orders"
    model = OneCOrder
    id_field = "id"

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

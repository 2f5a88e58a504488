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

Speed: a clean page is decoded by msgspec, in one C call, straight into the row models
(GUIDs, exact ``Decimal`` from JSON numbers and plain numeric strings, datetimes, text).
``Формат()`` numbers are first rewritten to plain ones in the body (only the number fields,
only when the plain decode failed), and a pass over the decoded rows settles what a type
cannot say: zero GUIDs, empty dates, the integration's zone, a name for every item. If a
row is still wrong, the page is redone row by row on the careful path, which parses what it
can and says what is wrong with the rest. Both paths give the same result for the same row
(a property test checks this).
"""

from __future__ import annotations

import gc
import operator
import re
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from itertools import chain, repeat
from operator import attrgetter
from typing import Any
from uuid import UUID

import msgspec
import orjson
from msgspec.structs import force_setattr as _force

from tradeos_pipelines.sources.common.errors import OneCProtocolError, describe_body
from tradeos_pipelines.sources.common.rows import (
    NomenclatureItem,
    OneCOrder,
    Page,
    RejectedRow,
    StockRow,
)

BOM = b"\xef\xbb\xbf"
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"
# Thousands separators 1C's Формат() uses: no-break space, narrow no-break space, space.
_THOUSANDS = str.maketrans("", "", "\u00a0\u202f ")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}([\u00a0\u202f ]\d{3})*([.,]\d+)?")
# The same separators in UTF-8, as they appear in a body.
_SEPARATORS = rb"(?:\xc2\xa0|\xe2\x80\xaf| )"
_COMMA_TO_POINT = bytes.maketrans(b",", b".")
_ZERO_GUID_BYTES = ZERO_GUID.encode()
_NAME, _PRICE, _BARCODES = attrgetter("name"), attrgetter("price"), attrgetter("barcodes")
_AMOUNTS = attrgetter("quantity", "reserved", "available")
_TZINFO = attrgetter("tzinfo")
_AFTER_EMPTY_DATE = datetime(1, 1, 2)  # 1C's empty date is 0001-01-01T00:00:00
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


# ----- rows ---------------------------------------------------------------------------------
@dataclass
class Decoded:
    """A page decoded but not yet settled into models: the cursor is known already."""

    rows: list[Any]
    next_cursor: str | None
    total: int | None
    body: bytes
    typed: bool  # rows are models from the typed decode (to settle), not plain JSON values


def _zoned(moment: datetime | None, zone: tzinfo) -> datetime | None:
    """A datetime as decoded → aware in ``zone``; ``None`` for 1C's empty date."""
    if moment is None or (moment.year, moment.month, moment.day) == (1, 1, 1):
        return None
    if moment.tzinfo is not None:
        return moment.astimezone(zone)
    return datetime.combine(moment, moment.time(), zone)


def _formatted_numbers(fields: tuple[str, ...]) -> re.Pattern[bytes]:
    """A pattern for ``"<field>": "1 234,50"`` (a ``Формат()`` string) in a JSON body.

    Only grouped or decimal-comma strings match: plain ``"1234.50"`` decodes as it is.
    Inside a JSON string every quote is escaped, so ``"price": "`` can only be a key and
    its string value, never text within another value.
    """
    names = b"|".join(re.escape(name.encode()) for name in fields)
    number = rb"[+-]?\d{1,3}(?:" + _SEPARATORS + rb"\d{3})+(?:[.,]\d+)?|[+-]?\d{1,3},\d+"
    return re.compile(rb'("(?:' + names + rb')"\s*:\s*")(' + number + rb')"')


def _plain_number(match: re.Match[bytes]) -> bytes:
    """``"1 234,50"`` → ``"1234.50"``: what :func:`parse_decimal` makes of it."""
    # The matched text holds only digits, a sign, separators and [.,]: dropping the bytes
    # of the separators' UTF-8 forms one by one is safe.
    return match[1] + match[2].translate(_COMMA_TO_POINT, b"\xc2\xa0\xe2\x80\xaf ") + b'"'


class RowParser:
    """Parses the pages of one entity for one integration's time zone.

    :meth:`decode` reads the body and :meth:`build` makes the page. A clean page is decoded
    by msgspec, in C, straight into the row models (GUIDs, ``Decimal``, datetimes, text);
    ``Формат()`` numbers are first rewritten to plain ones in the body, and a cheap pass
    over the decoded rows then settles what a type cannot say (zero GUIDs, empty dates, the
    zone, names of items). A page the typed decode cannot take, or with a row the pass
    finds wrong, is parsed row by row on the careful path, which parses what it can and says
    what is wrong with the rest.
    """

    entity: str
    model: type[Any]
    id_field: str
    typed: bool = False  # whether clean pages are decoded straight into ``model``
    numbers: tuple[str, ...] = ()  # the fields 1C may send as ``Формат()`` strings
    dates: tuple[str, ...] = ()  # datetime fields the typed decode leaves naive

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._dates: dict[datetime | None, datetime | None] = {None: None}
        self._decoder = msgspec.json.Decoder(_envelope_of(self.model)) if self.typed else None
        self._formatted = _formatted_numbers(self.numbers) if self.numbers else None
        self._formatting = False  # the last page had Формат() numbers

    def decode(self, body: bytes, what: str) -> Decoded:
        """Decode a page body; :class:`OneCProtocolError` when it is not the envelope."""
        with _collection_paused():
            return self._decode(body, what)

    def _decode(self, body: bytes, what: str) -> Decoded:
        body = strip_bom(body)
        if self._decoder is not None:
            page = None if self._formatting else self._typed(body)
            if page is None and self._formatted is not None:
                plain, changed = self._formatted.subn(_plain_number, body)
                if changed or self._formatting:  # else the typed decode failed on it already
                    page = self._typed(plain)
                # A 1C publication formats its numbers on every page or on none: once a
                # page had them, rewrite first rather than fail a typed decode each page.
                self._formatting = bool(changed)
            if page is not None:
                return Decoded(page.items, page.next_cursor or None, page.total, body, True)
        envelope = decode_envelope(body, what)
        return Decoded(envelope["items"], envelope["next_cursor"], envelope["total"], body, False)

    def _typed(self, body: bytes) -> Any:
        assert self._decoder is not None
        try:
            return self._decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None  # a broken row or body: the careful path finds out which and says why

    def build(self, decoded: Decoded) -> Page[Any]:
        """The page's row models; rows that are wrong become :class:`RejectedRow`."""
        with _collection_paused():
            return self._build_page(decoded)

    def _build_page(self, decoded: Decoded) -> Page[Any]:
        if decoded.typed:
            if self.settle(decoded.rows, decoded.body):
                return self._page(decoded.rows, [], decoded)
            # Some row needs the careful path; redo the page from plain dicts so a
            # rejected row carries exactly what 1C sent.
            rows = orjson.loads(decoded.body)["items"]
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
            self._dates = {None: None}
        return Page(
            items=items, rejected=rejected, next_cursor=decoded.next_cursor, total=decoded.total
        )

    def reject(self, raw: Any, reason: str) -> RejectedRow:
        onec_id = raw.get(self.id_field) if isinstance(raw, dict) else None
        return RejectedRow(
            payload=raw, reason=reason, onec_id=str(onec_id) if onec_id is not None else None
        )

    def settle(self, rows: list[Any], body: bytes) -> bool:
        """Finish rows of the typed decode in place; ``False`` if one needs the careful path.

        The checks run as C-level passes (``map``, ``in``) over the whole page; only a page
        that has the zero GUID somewhere is looked at row by row.
        """
        raise NotImplementedError

    def _zone(self, rows: list[Any]) -> None:
        """Put the decoded (naive, 1C local) datetimes of ``rows`` in the integration's zone."""
        zoned, zone = self._dates, self.zone
        for name in self.dates:
            moments = list(map(attrgetter(name), rows))
            # A bulk edit in 1C stamps many rows with the same second: convert each distinct
            # moment once; map() keeps the per-row work in C.
            new = set(moments).difference(zoned)
            new.discard(None)
            if new and (any(map(_TZINFO, new)) or min(new) < _AFTER_EMPTY_DATE):
                # An offset 1C should not send, or its empty date: one by one.
                zoned.update((moment, _zoned(moment, zone)) for moment in new)
            elif new:
                # The usual case, all in C: 1C local wall time + the zone. combine() is
                # ~4x cheaper than replace(tzinfo=...).
                naive = list(new)
                times = map(datetime.time, naive)
                zoned.update(
                    zip(naive, map(datetime.combine, naive, times, repeat(zone)), strict=True)
                )
            deque(map(_force, rows, repeat(name), map(zoned.__getitem__, moments)), maxlen=0)

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


def _must_be_object(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RowError("row", f"expected a JSON object, got {type(raw).__name__}")
    return raw


def _envelope_of(model: type[Any]) -> type[msgspec.Struct]:
    """The list envelope of 1C's answers with rows of ``model``, for the typed decode."""
    return msgspec.defstruct(
        f"{model.__name__}Envelope",
        [
            ("items", list[model]),  # type: ignore[valid-type]
            ("next_cursor", str | None, None),
            ("total", int | None, None),
        ],
    )


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
        return NomenclatureItem(
            id=item_id,
            code=self._field(raw, "code", _text),
            article=self._field(raw, "article", _text),
            name=name,
            full_name=self._field(raw, "full_name", _text),
            unit=self._field(raw, "unit", _text),
            group_id=self._field(raw, "group_id", parse_guid),
            is_folder=is_folder,
            barcodes=codes,
            price=self._field(raw, "price", parse_decimal),
            vat=self._field(raw, "vat", _text),
            deleted=self._field(raw, "deleted", _flag),
            version=self._field(raw, "version", _text),
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
        raw = _must_be_object(raw)
        quantity = self._required_number(raw, "quantity")
        reserved = self._field(raw, "reserved", parse_decimal) or Decimal(0)
        available = self._field(raw, "available", parse_decimal)
        return StockRow(
            product_id=self._required_guid(raw, "product_id"),
            warehouse_id=self._required_guid(raw, "warehouse_id"),
            warehouse_name=self._field(raw, "warehouse_name", _text),
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
        raw = _must_be_object(raw)
        number = self._field(raw, "number", _text)
        if not number:
            raise RowError("number", "missing")
        status = self._field(raw, "status", _text)
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

"""Turning pages of the HTTP service into typed rows: the fast and the careful path.

Value parsers: :mod:`tradeos_pipelines.sources.common.values`; the parsers of each entity:
:mod:`.entities`. Every quirk of the contract is handled in those three modules, once:

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
import re
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from itertools import repeat
from operator import attrgetter
from typing import Any
from uuid import UUID

import msgspec
import orjson
from msgspec.structs import force_setattr as _force

from tradeos_pipelines.sources.common.errors import OneCProtocolError, describe_body
from tradeos_pipelines.sources.common.rows import (
    Page,
    RejectedRow,
)
from tradeos_pipelines.sources.common.values import (
    RowError,
    parse_decimal,
    parse_guid,
    parse_local_datetime,
    strip_bom,
)

# The same separators in UTF-8, as they appear in a body.
_SEPARATORS = rb"(?:\xc2\xa0|\xe2\x80\xaf| )"
_COMMA_TO_POINT = bytes.maketrans(b",", b".")
_TZINFO = attrgetter("tzinfo")
_AFTER_EMPTY_DATE = datetime(1, 1, 2)  # 1C's empty date is 0001-01-01T00:00:00
_CACHE_LIMIT = 50_000


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


def must_be_object(raw: Any) -> dict[str, Any]:
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

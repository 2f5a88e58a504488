"""Single 1C values → Python values, shared by every 1C protocol.

1C writes the same things the same way whatever the protocol: an empty reference is the zero
GUID, an empty date is ``0001-01-01T00:00:00``, datetimes are the server's local time without
a zone, and ``Формат()`` numbers may carry no-break spaces and a decimal comma. Each parser
here takes one value and gives the typed one, or raises ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

BOM = b"\xef\xbb\xbf"
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"
# Thousands separators 1C's Формат() uses: no-break space, narrow no-break space, space.
THOUSANDS = str.maketrans("", "", "\u00a0\u202f ")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}([\u00a0\u202f ]\d{3})*([.,]\d+)?")


class RowError(ValueError):
    """One field of a row is wrong: ``str()`` is ``"<field>: <what is wrong>"``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


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
    if GROUPED_NUMBER.fullmatch(text):
        text = text.translate(THOUSANDS).replace(",", ".")
    elif not PLAIN_NUMBER.fullmatch(text):
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
        raise ValueError(f"{short(value)!r} is not a GUID") from None


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
        raise ValueError(f"{short(value)!r} is not a date (YYYY-MM-DDTHH:MM:SS)") from None
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


def short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[:limit] + "…"


def text(value: Any) -> str | None:
    """Strings as is; numbers as text (1C sends numeric codes as numbers)."""
    if value is None or type(value) is str:
        return value
    if type(value) in (int, float):
        return str(value)
    raise ValueError(f"{value!r} is not text")


def flag(value: Any) -> bool:
    if value is None:
        return False
    if type(value) is bool:
        return value
    raise ValueError(f"{value!r} is not true/false")

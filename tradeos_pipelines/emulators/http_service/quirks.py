"""What a real 1C HTTP service sends instead of clean JSON, switched on with ``--quirks``.

- numbers formatted by ``Формат()``: ``"1234.50"``, ``"1 234,50"`` with a no-break space
  (U+00A0) or a plain space as the thousands separator; some stay JSON numbers;
- the zero GUID for "no reference" (no parent group, an order typed in 1C);
- the empty date ``0001-01-01T00:00:00`` for "no date";
- a UTF-8 byte-order mark before the body (added by the app, not here).

Which form a row gets depends only on its key, so a page reads the same every time.
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"
BOM = b"\xef\xbb\xbf"


def format_number(value: Any, decimals: int, variant: int) -> Any:
    """``value`` as 1C's ``Формат()`` might print it (variant 0 keeps the JSON number)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or variant == 0:
        return value
    text = f"{Decimal(str(value)):.{decimals}f}"
    if variant == 1:
        return text
    whole, _, fraction = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    digits = whole.lstrip("-")
    groups = []
    while digits:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    separator = "\u00a0" if variant == 2 else " "
    return f"{sign}{separator.join(groups)},{fraction}"


def _variant(key: str) -> int:
    return zlib.crc32(key.encode()) % 4


def nomenclature(key: str, row: dict[str, Any]) -> dict[str, Any]:
    row["price"] = format_number(row.get("price"), 2, _variant(key))
    if "group_id" in row and row["group_id"] is None:
        row["group_id"] = ZERO_GUID
    return row


def stock(key: str, row: dict[str, Any]) -> dict[str, Any]:
    variant = _variant(key)
    for name in ("quantity", "reserved", "available"):
        if name in row:
            row[name] = format_number(row[name], 3, variant)
    return row


def orders(key: str, row: dict[str, Any]) -> dict[str, Any]:
    row["total"] = format_number(row.get("total"), 2, _variant(key))
    if "date" in row and row["date"] is None:
        row["date"] = EMPTY_DATE
    if "external_id" in row and row["external_id"] is None:
        row["external_id"] = ZERO_GUID
    return row

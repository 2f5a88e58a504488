"""How the operator CLI prints: aligned tables, local times with their offset, or JSON.

Cyrillic names and 1C errors are printed as they are: when standard output cannot encode
them (a Latin-1 terminal, ``PYTHONIOENCODING=ascii``), it is switched to UTF-8 rather than
failing halfway through a table.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def ensure_unicode_stdout() -> None:
    """Make stdout/stderr write UTF-8 when their encoding cannot hold Cyrillic."""
    for stream in (sys.stdout, sys.stderr):
        try:
            "Ёё—₽".encode(stream.encoding or "ascii")
        except (UnicodeEncodeError, LookupError):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(encoding="utf-8")


def out(line: str = "") -> None:
    """One line on standard output."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def out_json(value: Any) -> None:
    """``value`` as indented JSON (UTF-8, Cyrillic as is)."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """An aligned table; the last column is not padded (it may be long, e.g. an error)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers[:-1])]
    for row in [list(headers), *cells]:
        padded = [v.ljust(w) for v, w in zip(row, widths, strict=False)]
        out("  ".join([*padded, row[-1]]).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("\n", " ")


def when(value: str | None) -> str:
    """An ISO timestamp from the API in the local time zone, with its offset."""
    if not value:
        return "-"
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now (``30m``, ``24h``, ``7d``) or an ISO date-time."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(value.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"--since {value!r}: expected a duration such as 30m, 24h, 7d or an ISO date-time "
            "such as 2026-12-01T09:00+03:00"
        ) from None
    return moment if moment.tzinfo else moment.astimezone()

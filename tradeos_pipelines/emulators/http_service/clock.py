"""1C wall-clock time as the emulator keeps it: naive local datetimes as integer milliseconds.

1C stores ``modified_at`` without a zone, in the server's local time. The emulator does the
same: a timestamp is the number of milliseconds from 1970-01-01T00:00:00 *local*, which sorts
and compares cheaply and formats back to the contract's ``YYYY-MM-DDTHH:MM:SS[.fff]``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1)
# The generated catalogue was "last edited" from this moment on.
BASE_MS = int((datetime(2025, 6, 2, 9, 0, 0) - EPOCH).total_seconds()) * 1000


@lru_cache(maxsize=4096)  # rows are stamped in runs; the same stamp formats many times
def format_ms(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` with ``.fff`` only when the milliseconds are not zero."""
    moment = EPOCH + timedelta(milliseconds=ms)
    if ms % 1000:
        return moment.isoformat(timespec="milliseconds")
    return moment.isoformat(timespec="seconds")


def parse_local(value: str) -> int:
    """Parse a 1C local datetime (no zone) into milliseconds; ``ValueError`` names the problem."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"ожидается дата вида ГГГГ-ММ-ДДTЧЧ:ММ:СС, получено {value!r}") from None
    if moment.tzinfo is not None:
        raise ValueError(f"дата должна быть местным временем 1С без часового пояса: {value!r}")
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class WallClock:
    """The emulated 1C server's clock in its time zone; never goes backwards.

    Each reading is at least 1 ms after the previous one, so an edited row always sorts after
    every row already stamped and ``changed_since`` of the last read finds it.
    """

    def __init__(self, timezone: str) -> None:
        self._zone = ZoneInfo(timezone)
        self._last = 0

    def now_ms(self) -> int:
        local = datetime.now(self._zone).replace(tzinfo=None)
        delta = local - EPOCH
        ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
        self._last = max(ms, self._last + 1)
        return self._last

    def observe(self, ms: int) -> None:
        """Never stamp earlier than a timestamp already in the data."""
        self._last = max(self._last, ms)

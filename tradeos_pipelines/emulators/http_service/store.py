"""Rows of one entity, kept serialised and ordered for keyset paging.

Rows are ordered by ``(modified_at, key)`` once, at load; an edited row moves to the end of
that order (its new timestamp is the latest), so a reader paging through meets it again and
never skips it. Each row is kept as the JSON bytes it is served as; a page is a join of those
bytes, and the quirky form (1C's formatted numbers, zero GUIDs) is made on first use.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import orjson

from tradeos_pipelines.emulators.http_service.clock import format_ms

# Sorts after every key of a timestamp: "strictly later than changed_since".
_AFTER_ALL_KEYS = "\U0010ffff"


def serialise(row: dict[str, Any]) -> bytes:
    """A row's JSON as kept by the store, right-sized.

    orjson returns its whole growth buffer (4 KB for a small row), and the store keeps every
    row for its lifetime: copied to its length, 100,000 goods with their stock take ~10x less
    memory (ijl/orjson#483).
    """
    return bytes(memoryview(orjson.dumps(row)))


class BadCursor(ValueError):
    """The cursor was not issued by this service."""


def encode_cursor(position: tuple[int, str]) -> str:
    """Opaque cursor for a ``(modified_at_ms, key)`` position."""
    return base64.urlsafe_b64encode(f"{position[0]}|{position[1]}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Inverse of :func:`encode_cursor`; :class:`BadCursor` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
        ms, key = text.split("|", 1)
        return int(ms), key
    except (ValueError, UnicodeError, binascii.Error):
        raise BadCursor(f"cursor {cursor[:40]!r} не выдан этим сервисом") from None


class KeysetIndex:
    """Keys ordered by ``(modified_at_ms, key)``."""

    def __init__(self, entries: Iterable[tuple[int, str]] = ()) -> None:
        self._order: list[tuple[int, str]] = sorted(entries)
        self._stamp: dict[str, int] = {key: ms for ms, key in self._order}

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: str) -> bool:
        return key in self._stamp

    def stamp(self, key: str) -> int:
        return self._stamp[key]

    def put(self, key: str, ms: int) -> None:
        """Insert ``key`` or move it to its new timestamp (usually the end: O(1) append)."""
        old = self._stamp.get(key)
        if old is not None:
            del self._order[bisect_right(self._order, (old, key)) - 1]
        self._stamp[key] = ms
        entry = (ms, key)
        if not self._order or self._order[-1] < entry:
            self._order.append(entry)
        else:
            self._order.insert(bisect_right(self._order, entry), entry)

    def start(self, after: tuple[int, str] | None, since_ms: int | None) -> int:
        """Index of the first row after the cursor position and strictly after ``since_ms``."""
        begin = 0
        if since_ms is not None:
            begin = bisect_right(self._order, (since_ms, _AFTER_ALL_KEYS))
        if after is not None:
            begin = max(begin, bisect_right(self._order, after))
        return begin

    def count_from(self, begin: int) -> int:
        return len(self._order) - begin

    def slice(self, begin: int, limit: int) -> list[tuple[int, str]]:
        return self._order[begin : begin + limit]

    def scan(self, begin: int, accept: Callable[[str], bool]) -> Iterator[tuple[int, str]]:
        """Entries from ``begin`` on that ``accept`` lets through."""
        return (entry for entry in islice(self._order, begin, None) if accept(entry[1]))

    def oldest(self, count: int, accept: Callable[[str], bool]) -> list[str]:
        """The ``count`` least recently modified keys that ``accept`` lets through."""
        found: list[str] = []
        for _, key in self._order:
            if len(found) == count:
                break
            if accept(key):
                found.append(key)
        return found


class EntityStore:
    """One list endpoint's rows: serialised bytes by key plus the keyset order."""

    def __init__(
        self,
        name: str,
        rows: Iterable[tuple[int, str, dict[str, Any]]],
        quirk: Callable[[str, dict[str, Any]], dict[str, Any]],
    ) -> None:
        self.name = name
        self._quirk = quirk
        self._plain: dict[str, bytes] = {}
        self._quirky: dict[str, bytes] = {}
        entries = []
        for ms, key, row in rows:
            row["modified_at"] = format_ms(ms)
            self._plain[key] = serialise(row)
            entries.append((ms, key))
        self.index = KeysetIndex(entries)

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, key: str) -> bool:
        return key in self._plain

    def get(self, key: str) -> dict[str, Any]:
        """A copy of the row (wire form, no quirks)."""
        return orjson.loads(self._plain[key])

    def put(self, key: str, row: dict[str, Any], ms: int) -> None:
        """Insert or replace a row stamped ``ms``; it moves to the end of the paging order."""
        row["modified_at"] = format_ms(ms)
        self._plain[key] = serialise(row)
        self._quirky.pop(key, None)
        self.index.put(key, ms)

    def serialised(self, key: str, quirks: bool) -> bytes:
        if not quirks:
            return self._plain[key]
        cached = self._quirky.get(key)
        if cached is None:
            cached = serialise(self._quirk(key, orjson.loads(self._plain[key])))
            self._quirky[key] = cached
        return cached

    def page(
        self,
        *,
        after: tuple[int, str] | None,
        since_ms: int | None,
        limit: int,
        quirks: bool,
        accept: Callable[[str], bool] | None = None,
    ) -> tuple[list[bytes], str | None, int | None]:
        """(row bytes, next cursor or None, total matching) for one page.

        With a filter (``accept``) the total costs a scan, so it is given on the first page only
        (the contract allows it to be absent).
        """
        begin = self.index.start(after, since_ms)
        if accept is None:
            entries = self.index.slice(begin, limit + 1)
            total: int | None = self.index.count_from(self.index.start(None, since_ms))
        else:
            entries = list(islice(self.index.scan(begin, accept), limit + 1))
            total = sum(1 for _ in self.index.scan(begin, accept)) if after is None else None
        more = len(entries) > limit
        entries = entries[:limit]
        chunks = [self.serialised(key, quirks) for _, key in entries]
        return chunks, encode_cursor(entries[-1]) if more else None, total

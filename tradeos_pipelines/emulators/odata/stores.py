"""Where the emulated infobase keeps its rows, compactly, and how a page is read from them.

- :class:`ObjectStore` (catalogs, documents): one right-sized JSON ``bytes`` per object, the
  whole list sorted. Every row's JSON begins ``{"Ref_Key":"<guid>"``, so sorting the bytes
  sorts by ``Ref_Key`` and a bisect finds a key: no dict and no key strings are kept, which
  is what lets a million goods fit (about 0.7 KB each).
- Registers keep columns in :mod:`array` arrays (a few dozen bytes a record) and make the
  JSON of a record only when it is served.

Every table is read through :func:`read`, which applies a compiled ``$filter``, access
restrictions, ``$orderby`` and ``$skip``/``$top``. Tables that yield rows in the requested
order are streamed; a table remembers where the last page ended (:class:`ResumeCache`) so that
a client paging with ``$skip`` through a filtered million rows does not rescan them all.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

import orjson

from tradeos_pipelines.emulators.odata.query import (
    Filter,
    KeyRange,
    ODataError,
    Row,
    sort_key,
)
from tradeos_pipelines.emulators.odata.schema import EntityType

KEY_PREFIX = b'{"Ref_Key":"'
KEY_END = len(KEY_PREFIX) + 36
Order = tuple[tuple[str, bool], ...]
REF_ORDER: Order = (("Ref_Key", False),)


def serialise(row: dict[str, Any]) -> bytes:
    """A row's JSON, right-sized.

    orjson returns its whole growth buffer, and a store keeps rows for its lifetime; copied
    to its length, a row takes its own size (ijl/orjson#483).
    """
    return bytes(memoryview(orjson.dumps(row)))


def number(value: float) -> float | int:
    """1C writes an integral number without a fraction: ``5``, not ``5.0``."""
    return int(value) if value == int(value) else value


class Table(Protocol):
    """What :func:`read` needs from a table: rows in a stable order, by position."""

    entity: EntityType
    order: Order  # the $orderby its scan already satisfies
    dense: bool  # every position holds exactly one row (so $skip is an index)
    cache_key: tuple[Any, ...]

    def size(self) -> int:
        """The number of positions (rows, for a dense table)."""
        ...

    def scan(self, start: int) -> Iterator[tuple[int, Row]]:
        """``(position, row)`` from ``start`` on, in the table's order."""
        ...

    def lookup(self, condition: Filter) -> list[tuple[int, Row]] | None:
        """The rows the filter's key lists or key ranges allow, in order; None when the table
        has no such index."""
        ...

    def locate(self, skip: int) -> int | None:
        """The position of row ``skip`` without building the rows before it, or None."""
        ...

    def seek(self, field: str, value: str, inclusive: bool) -> int | None:
        """The first position past a lower bound on a key the table is sorted by, or None."""
        ...

    def row_key(self, row: Row) -> str | None:
        """The ``Ref_Key`` access restrictions apply to (None: the table has none)."""
        ...


# ----- catalogs and documents ------------------------------------------------------------------
_LABELS: dict[str, bytes] = {}  # property name -> b'"Name":'


class StoredRow(Row):
    """A catalog or document row kept as JSON: a property is sliced out of the bytes.

    A filter on ``DeletionMark`` over a million goods then reads one value per row instead
    of parsing whole rows. The slice is safe because JSON escapes every ``"`` inside a
    string, so ``"Name":`` and ``,"`` occur only between properties; scalar properties come
    before tabular parts, so the first ``"Name":`` is the object's own.
    """

    __slots__ = ()

    def get(self, name: str) -> Any:
        raw = self.raw
        assert raw is not None
        if name == "Ref_Key":
            return raw[len(KEY_PREFIX) : KEY_END].decode()
        if self._data is not None:
            return self._data.get(name)
        label = _LABELS.get(name)
        if label is None:
            label = _LABELS[name] = b'"' + name.encode() + b'":'
        start = raw.find(label)
        if start < 0:
            return None
        start += len(label)
        end = raw.find(b',"', start)
        return orjson.loads(raw[start : end if end >= 0 else len(raw) - 1])


def stored(raw: bytes) -> StoredRow:
    """A :class:`StoredRow` over stored JSON."""
    return StoredRow(raw=raw, loads=orjson.loads)


class ObjectStore:
    """Objects of one catalog or document, as JSON bytes sorted by ``Ref_Key``.

    With ``ordinals``, each object also gets a stable number in creation order, by which the
    registers refer to it (positions in the sorted list move when an object is inserted).
    """

    order = REF_ORDER
    dense = True

    def __init__(self, entity: EntityType, *, ordinals: bool = False) -> None:
        self.entity = entity
        self.cache_key: tuple[Any, ...] = (entity.name,)
        self.rows: list[bytes] = []
        self._ordinals: array[int] | None = array("i") if ordinals else None
        self._keys = bytearray()  # ordinal -> key, 36 ASCII bytes each

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace the contents with ``rows`` given in creation order (one sort, not n inserts)."""
        self.load_encoded([serialise(row) for row in rows])

    def load_encoded(self, encoded: list[bytes]) -> None:
        """:meth:`load` for rows already serialised."""
        self._keys = bytearray(b"".join(raw[len(KEY_PREFIX) : KEY_END] for raw in encoded))
        order = sorted(range(len(encoded)), key=encoded.__getitem__)
        self.rows = [encoded[i] for i in order]
        if self._ordinals is not None:
            self._ordinals = array("i", order)

    def position(self, key: str) -> int | None:
        """Where the object with ``key`` is in the sorted list, or None."""
        probe = KEY_PREFIX + key.encode()
        index = bisect_left(self.rows, probe)
        if index < len(self.rows) and self.rows[index].startswith(probe):
            return index
        return None

    def __contains__(self, key: str) -> bool:
        return self.position(key) is not None

    def get(self, key: str) -> dict[str, Any] | None:
        """A copy of the object, or ``None``."""
        raw = self.raw(key)
        return None if raw is None else orjson.loads(raw)

    def raw(self, key: str) -> bytes | None:
        """The object's stored JSON, or None."""
        index = self.position(key)
        return None if index is None else self.rows[index]

    def put(self, row: dict[str, Any]) -> bool:
        """Insert or replace an object (its ``Ref_Key`` in canonical form); True if new."""
        data = serialise(row)
        index = bisect_left(self.rows, data[:KEY_END])
        if index < len(self.rows) and self.rows[index].startswith(data[:KEY_END]):
            self.rows[index] = data
            return False
        self.rows.insert(index, data)
        if self._ordinals is not None:
            self._ordinals.insert(index, len(self._keys) // 36)
        self._keys += data[len(KEY_PREFIX) : KEY_END]
        return True

    def key_at(self, index: int) -> str:
        """The ``Ref_Key`` of the object at a position of the sorted list."""
        return self.rows[index][len(KEY_PREFIX) : KEY_END].decode()

    def ref_keys(self) -> Iterator[str]:
        """Every ``Ref_Key``, in key order."""
        return (raw[len(KEY_PREFIX) : KEY_END].decode() for raw in self.rows)

    def objects(self) -> Iterator[dict[str, Any]]:
        """Every object as a dict, in key order."""
        return (orjson.loads(raw) for raw in self.rows)

    def ordinals_between(self, bounds: KeyRange) -> list[int]:
        """The creation numbers of the objects whose key is within ``bounds``, in key order."""
        assert self._ordinals is not None
        low, low_in, high, high_in = bounds
        start = 0 if low is None else bisect_left(self.rows, KEY_PREFIX + low.encode())
        if low is not None and not low_in and start < len(self.rows):
            start += self.rows[start].startswith(KEY_PREFIX + low.encode())
        end = len(self.rows)
        if high is not None:
            end = bisect_left(self.rows, KEY_PREFIX + high.encode())
            end += (
                high_in
                and end < len(self.rows)
                and self.rows[end].startswith(KEY_PREFIX + high.encode())
            )
        return list(self._ordinals[start:end])

    def ordinal(self, key: str) -> int | None:
        """The creation number of the object with this key."""
        index = self.position(key)
        if index is None or self._ordinals is None:
            return None
        return self._ordinals[index]

    def key_of(self, ordinal: int) -> str:
        """The ``Ref_Key`` of the object with this creation number."""
        return self._keys[ordinal * 36 : ordinal * 36 + 36].decode()

    @property
    def ordinals(self) -> int:
        """How many objects were ever numbered (ordinals run from 0 to this, exclusive)."""
        return len(self._keys) // 36

    # Table
    def size(self) -> int:
        return len(self.rows)

    def scan(self, start: int) -> Iterator[tuple[int, Row]]:
        rows = self.rows
        return ((index, stored(rows[index])) for index in range(start, len(rows)))

    def lookup(self, condition: Filter) -> list[tuple[int, Row]] | None:
        keys = (condition.hints or {}).get("Ref_Key")
        if keys is None:
            return None
        found = sorted(i for i in map(self.position, keys) if i is not None)
        return [(i, stored(self.rows[i])) for i in found]

    def locate(self, skip: int) -> int | None:
        return None

    def seek(self, field: str, value: str, inclusive: bool) -> int | None:
        """The first position whose ``Ref_Key`` is past a lower bound."""
        if field != "Ref_Key":
            return None
        probe = KEY_PREFIX + value.encode()
        index = bisect_left(self.rows, probe)
        if not inclusive and index < len(self.rows) and self.rows[index].startswith(probe):
            index += 1
        return index

    def row_key(self, row: Row) -> str | None:
        assert row.raw is not None
        return row.raw[len(KEY_PREFIX) : KEY_END].decode()


class TabularRows:
    """A tabular part read as its own entity set (``Document_ЗаказКлиента_Товары``)."""

    order: Order = ()
    dense = False

    def __init__(self, entity: EntityType, owner: ObjectStore, part: str) -> None:
        self.entity = entity
        self.owner = owner
        self.part = part
        self.cache_key = (entity.name,)

    def size(self) -> int:
        return sum(len(orjson.loads(raw)[self.part]) for raw in self.owner.rows)

    def scan(self, start: int) -> Iterator[tuple[int, Row]]:
        position = 0
        for raw in self.owner.rows:
            for line in orjson.loads(raw)[self.part]:
                if position >= start:
                    yield position, Row(data=line)
                position += 1

    def lookup(self, condition: Filter) -> list[tuple[int, Row]] | None:
        return None

    def locate(self, skip: int) -> int | None:
        return None

    def seek(self, field: str, value: str, inclusive: bool) -> int | None:
        return None

    def row_key(self, row: Row) -> str | None:
        return row.get("Ref_Key")


# ----- registers --------------------------------------------------------------------------------
class Records:
    """A register table built from a row count and a function making row ``i``'s dict."""

    order: Order = ()
    dense = True

    def __init__(
        self,
        entity: EntityType,
        cache_key: tuple[Any, ...],
        size: Callable[[], int],
        make: Callable[[int], dict[str, Any] | None],
        lookup: Callable[[Filter], list[int] | None] | None = None,
        dense: bool = True,
        present: Callable[[int], bool] | None = None,
    ) -> None:
        self.entity = entity
        self.cache_key = cache_key
        self._size = size
        self._make = make
        self._lookup = lookup
        self._present = present  # cheap "position holds a row" for sparse tables
        self.dense = dense

    def size(self) -> int:
        return self._size()

    def scan(self, start: int) -> Iterator[tuple[int, Row]]:
        make = self._make
        for index in range(start, self._size()):
            data = make(index)
            if data is not None:
                yield index, Row(data=data)

    def lookup(self, condition: Filter) -> list[tuple[int, Row]] | None:
        if self._lookup is None:
            return None
        positions = self._lookup(condition)
        if positions is None:
            return None
        rows = ((i, self._make(i)) for i in positions)
        return [(i, Row(data=data)) for i, data in rows if data is not None]

    def locate(self, skip: int) -> int | None:
        """The position of row number ``skip``, found without building the rows before it."""
        if self._present is None:
            return None
        present = self._present
        seen = 0
        for position in range(self._size()):
            if present(position):
                if seen == skip:
                    return position
                seen += 1
        return self._size()

    def seek(self, field: str, value: str, inclusive: bool) -> int | None:
        return None

    def row_key(self, row: Row) -> str | None:
        return None


class Listed:
    """A small table computed whole (a grouped ``Balance``, record sets by recorder)."""

    dense = True

    order: Order = ()

    def __init__(self, entity: EntityType, rows: list[dict[str, Any]]) -> None:
        self.entity = entity
        self.rows = rows
        self.cache_key = (entity.name, id(rows))

    def size(self) -> int:
        return len(self.rows)

    def scan(self, start: int) -> Iterator[tuple[int, Row]]:
        return ((i, Row(data=self.rows[i])) for i in range(start, len(self.rows)))

    def lookup(self, condition: Filter) -> list[tuple[int, Row]] | None:
        return None

    def locate(self, skip: int) -> int | None:
        return min(skip, len(self.rows))

    def seek(self, field: str, value: str, inclusive: bool) -> int | None:
        return None

    def row_key(self, row: Row) -> str | None:
        return None


def ordinal_range(slots: array[int], ordinal: int, shift: int) -> range:
    """Positions of a sorted ``ordinal << shift | minor`` array that belong to ``ordinal``."""
    low = bisect_left(slots, ordinal << shift)
    return range(low, bisect_right(slots, ((ordinal + 1) << shift) - 1))


# ----- reading a page ---------------------------------------------------------------------------
@dataclass
class Access:
    """Access restrictions for one read: keys the user may not read (1C's RLS)."""

    denied: frozenset[str]
    allowed_only: bool
    entity_set: str

    def denial(self) -> ODataError:
        """Code 20: the result would hold a row the user may not read."""
        return ODataError(
            403,
            "20",
            f"Нарушение прав доступа! Недостаточно прав для чтения данных «{self.entity_set}» "
            "(ограничение доступа на уровне записей)",
        )


class ResumeCache:
    """Where the last pages of a query ended: ``(query, matched rows) -> next position``.

    The key includes the infobase's write generation, so any write forgets every entry.
    """

    def __init__(self, size: int = 256) -> None:
        self._entries: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._size = size

    def get(self, key: tuple[Any, ...]) -> int | None:
        """The remembered value, or None."""
        position = self._entries.get(key)
        if position is not None:
            self._entries.move_to_end(key)
        return position

    def put(self, key: tuple[Any, ...], position: int) -> None:
        """Remember a value, forgetting the least recently used beyond the size."""
        self._entries[key] = position
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()


@dataclass
class ReadResult:
    """A page of rows and, when asked for, the number of all matching rows."""

    rows: list[Row]
    count: int | None  # all matching rows, when asked for


def read(
    table: Table,
    *,
    filter: Filter | None = None,
    orderby: Order = (),
    skip: int = 0,
    top: int | None = None,
    access: Access | None = None,
    count: bool = False,
    cache: ResumeCache | None = None,
    generation: int = 0,
) -> ReadResult:
    """One page of ``table``: filtered, access-checked, ordered, ``$skip``/``$top`` applied.

    Without ``allowedOnly`` a page holding a row the user may not read is refused (code 20);
    with it such rows are left out as if they did not exist. ``count`` adds the number of
    all matching rows (``$count``, ``$inlinecount``).
    """
    predicate = filter.predicate if filter is not None else None
    denied = access.denied if access is not None else frozenset()
    hide = bool(denied) and access is not None and access.allowed_only

    def matches(row: Row) -> bool:
        if predicate is not None and not predicate(row):
            return False
        return not (hide and table.row_key(row) in denied)

    every_row = predicate is None and not hide
    narrows = filter is not None and bool(filter.hints or filter.ranges)
    candidates = table.lookup(filter) if filter is not None and narrows else None
    query = (*table.cache_key, filter.text if filter else None, hide, generation)
    total = None
    if count:
        if candidates is not None:
            total = sum(1 for _, row in candidates if matches(row))
        elif every_row and table.dense:
            total = table.size()
        else:
            # A full scan: remembered until the next write, as a client asks before paging.
            total = cache.get((*query, "count")) if cache is not None else None
            if total is None:
                total = sum(1 for _, row in table.scan(0) if matches(row))
                if cache is not None:
                    cache.put((*query, "count"), total)
    if candidates is not None or (orderby and tuple(orderby) != table.order):
        source = candidates if candidates is not None else table.scan(0)
        matched = [row for _, row in source if matches(row)]
        for name, descending in reversed(orderby):
            matched.sort(key=lambda row, n=name: sort_key(row.get(n)), reverse=descending)
        page = matched[skip : None if top is None else skip + top]
    else:
        bound = filter.bound if filter is not None else None
        page = _stream(table, matches, every_row, skip, top, cache, query, bound)
    if denied and not hide and any(table.row_key(row) in denied for row in page):
        assert access is not None
        raise access.denial()
    return ReadResult(page, total)


def _stream(
    table: Table,
    matches: Callable[[Row], bool],
    every_row: bool,
    skip: int,
    top: int | None,
    cache: ResumeCache | None,
    query: tuple[Any, ...],
    bound: tuple[str, str, bool] | None,
) -> list[Row]:
    """A page read in the table's own order, resuming where the previous page ended.

    Without a remembered position, an unfiltered sparse table counts its rows to ``$skip``
    cheaply (:meth:`Table.locate`), and a key bound lets a sorted store start past it.
    """
    if top == 0:
        return []
    if every_row and table.dense:
        return [row for _, row in islice(table.scan(skip), top)]
    start = cache.get((*query, skip)) if cache is not None else None
    matched = skip if start is not None else 0
    if start is None and every_row:
        start = table.locate(skip)
        matched = skip if start is not None else 0
    if start is None and bound is not None:
        start = table.seek(*bound)
    page: list[Row] = []
    for position, row in table.scan(start or 0):
        if not matches(row):
            continue
        if matched >= skip:
            page.append(row)
            if top is not None and len(page) == top:
                if cache is not None:
                    cache.put((*query, skip + len(page)), position + 1)
                break
        matched += 1
    return page

"""Query options as 1C reads them: ``$filter``, ``$select``, ``$orderby``, ``$top``/``$skip``.

``$filter`` is parsed into a small tree and compiled into a predicate over rows. Supported:
``eq ne gt ge lt le and or not``, parentheses, literals ``guid'…'``, ``datetime'…'``, ``'…'``
(``''`` escapes a quote), numbers, ``true``/``false``/``null``, and the functions
``substringof``, ``startswith``, ``endswith``. Anything else is what the vendor's guide
calls a parse error (code 14) or an unsupported function (code 21); arithmetic and navigation
paths are valid 1C syntax the emulator does not evaluate (code 0, "not supported").

A literal ``+`` is not a space: the query string is percent-decoded only, as 1C does, so a
client that form-encodes spaces as ``+`` gets the 400 a real base gives it.

The compiler also derives *hints*: when a filter can only match rows whose ``…_Key`` is in a
known set (``Ref_Key eq guid'a' or Ref_Key eq guid'b'``, the way clients fetch changed keys
in batches), a store looks those rows up instead of scanning every row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from tradeos_pipelines.emulators.odata.schema import (
    BOOLEAN,
    DATETIME,
    DOUBLE,
    GUID,
    INT64,
    STRING,
    EntityType,
)


class ODataError(Exception):
    """An answer in 1C's error shape: HTTP status, 1C's internal code, Russian message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def parse_error(option: str, detail: str) -> ODataError:
    """Code 14: a query option 1C cannot parse."""
    return ODataError(400, "14", f"Ошибка при разборе опции запроса {option}: {detail}")


def unknown_segment(name: str) -> ODataError:
    """Code 6 with the name echoed back, as 1C answers for an unknown property or set."""
    return ODataError(400, "6", f"Сегмент пути {name} не найден!")


def not_supported(what: str) -> ODataError:
    """Code 0: valid in 1C, not emulated here (the message says so)."""
    return ODataError(400, "0", f"Возможность не поддерживается эмулятором: {what}")


class Row:
    """A row as a predicate sees it: parsed lazily from its stored JSON, or a ready dict."""

    __slots__ = ("_data", "_loads", "raw")

    def __init__(
        self,
        raw: bytes | None = None,
        data: dict[str, Any] | None = None,
        loads: Callable[[bytes], dict[str, Any]] | None = None,
    ) -> None:
        self.raw = raw
        self._data = data
        self._loads = loads

    @property
    def data(self) -> dict[str, Any]:
        """The whole row as a dict (parsed on first use)."""
        if self._data is None:
            assert self.raw is not None and self._loads is not None
            self._data = self._loads(self.raw)
        return self._data

    def get(self, name: str) -> Any:
        """One property's value (``None`` if the row has no such property)."""
        return self.data.get(name)


Predicate = Callable[[Row], bool]
Hints = dict[str, frozenset[str]]

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<typed>(?:guid|datetime|datetimeoffset|time|binary|X)'(?:[^']|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?)
  | (?P<name>[^\W\d]\w*)
  | (?P<punct>[(),/:])
    """,
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_ARITHMETIC = {"add", "sub", "mul", "div", "mod"}
_FUNCTIONS = {"substringof": 2, "startswith": 2, "endswith": 2}
# Functions the vendor's guide lists as implemented in 1C; the emulator answers code 0 for them.
_KNOWN_1C_FUNCTIONS = {
    "concat", "like", "substring", "dateadd", "datedifference", "day", "dayofweek",
    "dayofyear", "hour", "minute", "month", "quarter", "second", "year", "cast", "isof",
    "round", "any", "all",
}  # fmt: skip


@dataclass(frozen=True)
class Token:
    """A lexical token of a filter: its kind (a group of ``_TOKEN``) and text."""

    kind: str
    text: str


def tokenize(text: str, option: str = "$filter") -> list[Token]:
    """Split a filter expression; an unknown character is a parse error (code 14)."""
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise parse_error(option, f"неожиданный символ {text[position]!r} в позиции {position}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group()))
    return tokens


# ----- the tree: literals, property references, comparisons, and/or, not, function calls -----
@dataclass(frozen=True)
class Literal:
    kind: str  # guid | datetime | string | number | bool | null
    value: Any


@dataclass(frozen=True)
class Property:
    name: str


@dataclass(frozen=True)
class Compare:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Logical:
    op: str  # and | or
    operands: tuple[Any, ...]  # n-ary: a 500-key or-chain must not recurse 500 deep


@dataclass(frozen=True)
class Not:
    operand: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


class _Parser:
    def __init__(self, tokens: list[Token], option: str) -> None:
        self.tokens = tokens
        self.position = 0
        self.option = option

    def fail(self, detail: str) -> ODataError:
        return parse_error(self.option, detail)

    def peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def word(self) -> str | None:
        token = self.peek()
        return token.text.lower() if token is not None and token.kind == "name" else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise self.fail("неожиданный конец выражения")
        self.position += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise self.fail(f"ожидается {text!r}, получено {token.text!r}")

    def parse(self) -> Any:
        node = self.logical("or")
        if self.peek() is not None:
            raise self.fail(f"лишний фрагмент {self.peek().text!r}")  # type: ignore[union-attr]
        return node

    def logical(self, op: str) -> Any:
        parse_operand = (lambda: self.logical("and")) if op == "or" else self.unary
        operands = [parse_operand()]
        while self.word() == op:
            self.position += 1
            operands.append(parse_operand())
        return operands[0] if len(operands) == 1 else Logical(op, tuple(operands))

    def unary(self) -> Any:
        if self.word() == "not":
            self.position += 1
            return Not(self.unary())
        return self.comparison()

    def comparison(self) -> Any:
        left = self.primary()
        word = self.word()
        if word in _ARITHMETIC:
            raise not_supported(f"арифметическая операция {word} в {self.option}")
        if word in _COMPARISONS:
            self.position += 1
            return Compare(word, left, self.primary())
        return left

    def primary(self) -> Any:
        token = self.take()
        if token.text == "(":
            node = self.logical("or")
            self.expect(")")
            return node
        if token.kind == "typed":
            return _typed_literal(token.text, self.option)
        if token.kind == "string":
            return Literal("string", token.text[1:-1].replace("''", "'"))
        if token.kind == "number":
            text = token.text.rstrip("mMdDfFlL")
            return Literal("number", float(text) if any(c in text for c in ".eE") else int(text))
        if token.kind != "name":
            raise self.fail(f"неожиданный фрагмент {token.text!r}")
        lowered = token.text.lower()
        if lowered in ("true", "false"):
            return Literal("bool", lowered == "true")
        if lowered == "null":
            return Literal("null", None)
        following = self.peek()
        if following is not None and following.text == "(":
            return self.call(token.text)
        if following is not None and following.text == "/":
            raise not_supported(f"путь через навигационное свойство {token.text}/… в {self.option}")
        return Property(token.text)

    def call(self, name: str) -> Call:
        lowered = name.lower()
        if lowered not in _FUNCTIONS:
            if lowered in _KNOWN_1C_FUNCTIONS:
                raise not_supported(f"функция {name} в {self.option}")
            raise ODataError(400, "21", f"Вызов нереализованной функции {name}")
        self.expect("(")
        args = [self.logical("or")]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.position += 1
            args.append(self.logical("or"))
        self.expect(")")
        if len(args) != _FUNCTIONS[lowered]:
            raise ODataError(400, "21", f"Неверное количество аргументов функции {name}")
        return Call(lowered, tuple(args))


def _typed_literal(text: str, option: str) -> Literal:
    prefix, _, quoted = text.partition("'")
    value = quoted[:-1].replace("''", "'")
    if prefix == "guid":
        try:
            return Literal("guid", str(UUID(value)))
        except ValueError:
            raise parse_error(option, f"неверный идентификатор guid'{value}'") from None
    if prefix == "datetime":
        try:
            return Literal("datetime", format_datetime(parse_datetime(value)))
        except ValueError:
            raise parse_error(option, f"неверная дата datetime'{value}'") from None
    raise not_supported(f"литерал {prefix}'…' в {option}")


def parse_datetime(text: str) -> datetime:
    """A 1C local date-time (no zone); ``ValueError`` for anything else."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        raise ValueError("1C dates carry no time zone")
    return moment


def format_datetime(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS``, the form 1C writes; as text it sorts in time order.

    Not ``strftime``: it drops the leading zeros of year 1, the year of 1C's empty date.
    """
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def parse_expression(text: str, option: str = "$filter") -> Any:
    """The tree of a ``$filter`` (or a virtual table's ``Condition``)."""
    if not text.strip():
        raise parse_error(option, "пустое выражение")
    return _Parser(tokenize(text, option), option).parse()


# ----- compiling ----------------------------------------------------------------------------
_LITERALS_FOR = {
    GUID: {"guid", "null"},
    DATETIME: {"datetime", "null"},
    # 1C compares a string property with a date literal as text (probe P7: 200).
    STRING: {"string", "datetime", "null"},
    BOOLEAN: {"bool", "null"},
    DOUBLE: {"number", "null"},
    INT64: {"number", "null"},
}
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


class Compiler:
    """Turns a tree into a predicate, checking names and types against an entity type."""

    def __init__(self, entity: EntityType, option: str = "$filter") -> None:
        self.entity = entity
        self.option = option

    def prop_type(self, name: str) -> str:
        """The Edm type of a property the filter names (code 6 for an unknown one)."""
        prop = self.entity.by_name.get(name)
        if prop is None or prop.rows is not None:
            raise unknown_segment(name)
        return prop.edm

    def compile(self, node: Any) -> Predicate:
        """A predicate for a (sub)tree that yields a boolean."""
        if isinstance(node, Logical):
            parts = [self.compile(operand) for operand in node.operands]
            if node.op == "and":
                return lambda row: all(part(row) for part in parts)
            return lambda row: any(part(row) for part in parts)
        if isinstance(node, Not):
            inner = self.compile(node.operand)
            return lambda row: not inner(row)
        if isinstance(node, Compare):
            return self.comparison(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Property):
            if self.prop_type(node.name) != BOOLEAN:
                raise parse_error(self.option, f"{node.name} не является логическим выражением")
            name = node.name
            return lambda row: row.get(name) is True
        if isinstance(node, Literal) and node.kind == "bool":
            value = node.value
            return lambda row: value
        raise parse_error(self.option, "ожидается логическое выражение")

    def comparison(self, node: Compare) -> Predicate:
        left, right, op = node.left, node.right, node.op
        if isinstance(left, Literal) and isinstance(right, Property):
            left, right = right, left
            op = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}.get(op, op)
        if isinstance(left, Call) and isinstance(right, Literal) and right.kind == "bool":
            # substringof(…) eq true, the form the vendor's guide uses
            inner = self.call(left)
            if op not in ("eq", "ne"):
                raise parse_error(self.option, f"операция {op} над логическим значением")
            wanted = right.value if op == "eq" else not right.value
            return lambda row: inner(row) is wanted
        if not isinstance(left, Property) or not isinstance(right, Literal):
            raise not_supported(f"сравнение двух выражений в {self.option}")
        edm = self.prop_type(left.name)
        if right.kind not in _LITERALS_FOR.get(edm, set()):
            raise parse_error(
                self.option, f"несовместимые типы: {left.name} ({edm}) и значение {right.value!r}"
            )
        if right.kind == "null" and op not in ("eq", "ne"):
            raise parse_error(self.option, f"операция {op} со значением null")
        compare = _OPERATORS[op]
        name, value = left.name, right.value

        def predicate(row: Row) -> bool:
            actual = row.get(name)
            if actual is None or value is None:
                return compare(actual is None, value is None) if op in ("eq", "ne") else False
            return compare(actual, value)

        return predicate

    def call(self, node: Call) -> Predicate:
        first, second = (self.text_operand(arg) for arg in node.args)
        if node.name == "substringof":
            return lambda row: (first(row) or "") in (second(row) or "")
        if node.name == "startswith":
            return lambda row: (first(row) or "").startswith(second(row) or "")
        return lambda row: (first(row) or "").endswith(second(row) or "")

    def text_operand(self, node: Any) -> Callable[[Row], str | None]:
        if isinstance(node, Literal) and node.kind == "string":
            value = node.value
            return lambda row: value
        if isinstance(node, Property) and self.prop_type(node.name) == STRING:
            name = node.name
            return lambda row: row.get(name)
        raise parse_error(self.option, "аргумент строковой функции должен быть строкой")


def hints(node: Any) -> Hints | None:
    """``{"Ref_Key": {…}}`` when the filter only matches rows with those key values."""
    if isinstance(node, Compare) and node.op == "eq":
        pair = (node.left, node.right)
        for prop, literal in (pair, pair[::-1]):
            if isinstance(prop, Property) and getattr(literal, "kind", None) == "guid":
                return {prop.name: frozenset((literal.value,))}
        return None
    if not isinstance(node, Logical):
        return None
    found = [hints(operand) for operand in node.operands]
    if node.op == "or":
        if any(h is None or len(h) != 1 for h in found):
            return None
        fields = {next(iter(h)) for h in found}  # type: ignore[arg-type]
        if len(fields) != 1:
            return None
        field = fields.pop()
        return {field: frozenset().union(*(h[field] for h in found))}  # type: ignore[index]
    merged: Hints = {}
    for h in found:
        for field, values in (h or {}).items():
            merged[field] = merged[field] & values if field in merged else values
    return merged or None


def _only_key_equalities(node: Any) -> bool:
    if isinstance(node, Logical):
        return all(_only_key_equalities(operand) for operand in node.operands)
    return isinstance(node, Compare) and node.op == "eq" and hints(node) is not None


def lower_bound(node: Any) -> tuple[str, str, bool] | None:
    """``(field, value, inclusive)`` for ``Ref_Key gt|ge guid'…'`` at the top of the filter
    (alone or in an ``and``): the keyset paging some clients do instead of ``$skip``."""
    for part in node.operands if isinstance(node, Logical) and node.op == "and" else (node,):
        if (
            isinstance(part, Compare)
            and part.op in ("gt", "ge")
            and isinstance(part.left, Property)
            and getattr(part.right, "kind", None) == "guid"
        ):
            return part.left.name, part.right.value, part.op == "ge"
    return None


KeyRange = tuple[str | None, bool, str | None, bool]  # low, inclusive, high, inclusive

_FLIPPED = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}


def key_ranges(node: Any) -> dict[str, KeyRange]:
    """``{field: (low, inclusive, high, inclusive)}`` for ``gt ge lt le guid'…'`` comparisons
    at the top of the filter (alone or in an ``and``): a client reading the records of one
    page of goods asks for ``Номенклатура_Key ge guid'first' and … le guid'last'``."""
    ranges: dict[str, KeyRange] = {}
    for part in _conjuncts(node):
        if not isinstance(part, Compare) or part.op not in _FLIPPED:
            continue
        prop, literal, op = part.left, part.right, part.op
        if isinstance(literal, Property):
            prop, literal, op = literal, prop, _FLIPPED[op]
        if not isinstance(prop, Property) or getattr(literal, "kind", None) != "guid":
            continue
        low, low_in, high, high_in = ranges.get(prop.name, (None, False, None, False))
        if op in ("gt", "ge") and (low is None or literal.value > low):
            low, low_in = literal.value, op == "ge"
        elif op in ("lt", "le") and (high is None or literal.value < high):
            high, high_in = literal.value, op == "le"
        ranges[prop.name] = (low, low_in, high, high_in)
    return ranges


def _conjuncts(node: Any) -> list[Any]:
    """The parts of a chain of ``and`` (``a and (b and c)`` is three parts)."""
    if isinstance(node, Logical) and node.op == "and":
        return [part for operand in node.operands for part in _conjuncts(operand)]
    return [node]


@dataclass
class Filter:
    """A compiled ``$filter``: the predicate, what it tells a store, its text (for caching).

    ``hints``: key sets a matching row must be in; ``exact``: the hints say all the filter
    says (a store that looked the keys up needs no further check); ``bound``: a lower bound
    on a key, from which a store sorted by it may start; ``ranges``: bounds on keys, by which
    a register finds the records of a range of goods.
    """

    predicate: Predicate
    hints: Hints | None
    text: str
    exact: bool = False
    bound: tuple[str, str, bool] | None = None
    ranges: dict[str, KeyRange] = field(default_factory=dict)


def compile_filter(text: str | None, entity: EntityType, option: str = "$filter") -> Filter | None:
    """``None`` for no filter; :class:`ODataError` for a filter 1C would refuse."""
    if text is None:
        return None
    tree = parse_expression(text, option)
    found = hints(tree)
    exact = found is not None and _only_key_equalities(tree)
    predicate = Compiler(entity, option).compile(tree)
    return Filter(predicate, found, text, exact, lower_bound(tree), key_ranges(tree))


# ----- $select, $orderby, paging --------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """Which properties to answer with, in the type's order; ``rows`` narrows tabular parts."""

    names: tuple[str, ...]
    rows: dict[str, tuple[str, ...]]

    def is_prefix_of(self, entity: EntityType) -> bool:
        """The selection is the type's first properties (it can be cut from stored JSON)."""
        return not self.rows and entity.names[: len(self.names)] == self.names


def parse_select(text: str | None, entity: EntityType) -> Selection | None:
    """``None`` means every property (``*`` or no ``$select``); ``**`` drops tabular parts."""
    if text is None:
        return None
    wanted: set[str] = set()
    row_fields: dict[str, set[str]] = {}
    for raw in text.split(","):
        item = raw.strip()
        if item == "*":
            return None
        if not item:
            raise parse_error("$select", "пустой элемент списка")
        if item == "**":
            wanted.update(p.name for p in entity.props if p.rows is None)
            continue
        head, _, tail = item.partition("/")
        prop = entity.by_name.get(head)
        if prop is None:
            raise unknown_segment(head)
        if tail:
            if prop.rows is None:
                raise not_supported(f"$select через навигационное свойство {item}")
            row_fields.setdefault(head, set()).add(tail)
        wanted.add(head)
    names = tuple(name for name in entity.names if name in wanted)
    return Selection(names, {k: tuple(sorted(v)) for k, v in row_fields.items()})


def parse_orderby(text: str | None, entity: EntityType) -> tuple[tuple[str, bool], ...]:
    """``((name, descending), …)``; an unknown name is code 6 with the name echoed."""
    if text is None or not text.strip():
        return ()
    order = []
    for raw in text.split(","):
        parts = raw.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1] not in ("asc", "desc")):
            raise parse_error("$orderby", f"неверный элемент {raw.strip()!r}")
        prop = entity.by_name.get(parts[0])
        if prop is None or prop.rows is not None:
            raise unknown_segment(parts[0])
        order.append((parts[0], len(parts) == 2 and parts[1] == "desc"))
    return tuple(order)


def parse_count(value: str | None, option: str) -> int | None:
    """A ``$top``/``$skip`` value: a non-negative integer."""
    if value is None:
        return None
    if not value.isdigit():
        raise parse_error(option, f"ожидается неотрицательное целое число, получено {value!r}")
    return int(value)


def sort_key(value: Any) -> tuple[bool, Any]:
    """A key that sorts ``None`` (an empty value) first and never compares it with a value."""
    return (value is not None, value if value is not None else 0)

"""Cursors for newest-first lists: the id of the last row of the page.

A cursor is the plain id (digits) rather than an encoded token, so the OpenAPI document can
state exactly which values are valid: every string it allows is a cursor the server takes
(rows older than that id), and a fuzzer's schema-valid request is never refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from api.core.errors import FieldErrors

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]
# Up to 18 digits: any such id fits PostgreSQL's BIGINT.
CURSOR_PATTERN = r"^[0-9]{0,18}$"
Cursor = Annotated[
    str | None,
    Query(
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page (older rows); empty for the first page",
    ),
]


def encode_cursor(last_id: int) -> str:
    """The cursor pointing after ``last_id``."""
    return str(last_id)


def decode_cursor(cursor: str | None) -> int | None:
    """The id a cursor points after (None for the first page), or a 422 naming ``cursor``
    (the route's pattern refuses malformed ones first; this guards direct callers)."""
    if cursor is None or cursor == "":
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
        raise FieldErrors(
            [("cursor", "not a cursor from a previous page's next_cursor")], location="query"
        )
    return int(cursor)


def page(rows: Sequence[T], limit: int, id_of: Callable[[T], int]) -> tuple[list[T], str | None]:
    """Split ``limit + 1`` fetched rows into the page and the next cursor."""
    items = list(rows[:limit])
    next_cursor = encode_cursor(id_of(items[-1])) if len(rows) > limit and items else None
    return items, next_cursor


def newest_first(
    session: Session,
    model: Any,
    *,
    limit: int,
    cursor: str | None,
    where: Sequence[ColumnElement[bool]] = (),
    **equal: Any,
) -> tuple[list[Any], str | None]:
    """One page of ``model`` rows, newest (highest id) first.

    ``equal`` filters by column equality and skips a filter whose value is ``None`` or empty
    (an absent query parameter); ``where`` adds any other conditions.
    """
    query: Select[Any] = select(model).order_by(model.id.desc()).limit(limit + 1)
    for column, value in equal.items():
        if value is not None and value != "":
            query = query.where(getattr(model, column) == value)
    for condition in where:
        query = query.where(condition)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(model.id < after)
    return page(list(session.scalars(query)), limit, lambda r: r.id)

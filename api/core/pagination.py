"""Opaque cursors for newest-first lists: the id of the last row of the page, encoded."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from api.core.errors import FieldErrors

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page (older rows)")]


def encode_cursor(last_id: int) -> str:
    """The cursor pointing after ``last_id``."""
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id a cursor points after, or a 422 naming ``cursor``."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, value = raw.partition(":")
        if version != "v1" or not value.isdigit():
            raise ValueError
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise FieldErrors(
            [("cursor", "not a cursor from a previous page's next_cursor")], location="query"
        ) from None


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

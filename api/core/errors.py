"""Consistent error bodies: every error is ``{"detail": ...}`` and never echoes secrets.

FastAPI's validation errors carry the submitted ``input``; for an integration that may be a 1C
password, so it is dropped. Each validation item gains ``field`` (the dotted body/query path)
so a client can show the message next to the right input.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

logger = logging.getLogger(__name__)

_LOCATION_ROOTS = {"body", "query", "path", "header", "cookie"}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATION_ROOTS:
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_items(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors as ``{"field", "loc", "msg", "type"}`` without the submitted input."""
    items = []
    for err in errors:
        msg = str(err.get("msg", "invalid value"))
        # Pydantic prefixes custom errors with "Value error, "; the field already says where.
        msg = msg.removeprefix("Value error, ")
        items.append(
            {
                "field": _field(err.get("loc", ())),
                "loc": list(err.get("loc", ())),
                "msg": msg,
                "type": err.get("type", "value_error"),
            }
        )
    return items


class FieldErrors(ValueError):
    """Cross-field validation that a schema cannot express; answered as a 422 naming fields."""

    def __init__(self, problems: list[tuple[str, str]], *, location: str = "body") -> None:
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in problems))
        self.problems = problems
        self.location = location


async def _field_errors(request: Request, exc: FieldErrors) -> JSONResponse:
    items = [
        {
            "field": field,
            "loc": [exc.location, *field.split(".")],
            "msg": msg,
            "type": "value_error",
        }
        for field, msg in exc.problems
    ]
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": items}
    )


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": jsonable_encoder(validation_items(list(exc.errors())))},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The exception text may hold anything (a URL with a password, a 1C answer): log the
    # type and location only and answer with a fixed message.
    logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return JSONResponse(status_code=500, content={"detail": "internal server error"})


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(FieldErrors, _field_errors)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)

"""Consistent error bodies: every error is ``{"detail": ...}`` and never echoes secrets.

Routes do not catch domain errors: the handlers below map each kind to its status once
(:data:`STATUS_OF`), with the exception's message as ``detail``. The sidecar's services raise
:class:`NotFound`, :class:`Conflict` or :class:`Unauthorized` (or a subclass); the engine's
and storage's errors are mapped by type.

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

from tradeos_pipelines.core.integration import IntegrationNotFound
from tradeos_pipelines.core.vocabulary import UnknownEntity
from tradeos_pipelines.engine.restore import ProductNotFound, RestoreRefused, UnknownVersion
from tradeos_pipelines.engine.result import ConflictNotFound, ConflictNotOpen, VersionNotFound
from tradeos_pipelines.launch import LaunchError

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


class NotFound(LookupError):
    """The thing a path names does not exist: 404."""


class Conflict(Exception):
    """The request clashes with the current state (taken id, disabled, replay): 409."""


class Unauthorized(PermissionError):
    """The caller could not be trusted (bad signature, stale timestamp): 401."""


# Most specific first: the first type an exception is an instance of gives its status.
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, status.HTTP_404_NOT_FOUND),
    (IntegrationNotFound, status.HTTP_404_NOT_FOUND),
    (ConflictNotFound, status.HTTP_404_NOT_FOUND),
    (VersionNotFound, status.HTTP_404_NOT_FOUND),
    (ProductNotFound, status.HTTP_404_NOT_FOUND),
    (UnknownVersion, status.HTTP_404_NOT_FOUND),
    (Conflict, status.HTTP_409_CONFLICT),
    (ConflictNotOpen, status.HTTP_409_CONFLICT),
    (RestoreRefused, status.HTTP_409_CONFLICT),
    (Unauthorized, status.HTTP_401_UNAUTHORIZED),
    (UnknownEntity, status.HTTP_422_UNPROCESSABLE_CONTENT),
    # Dagster answered but refused to start the run: the gateway's fault, not the caller's.
    (LaunchError, status.HTTP_502_BAD_GATEWAY),
)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    code = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
    return JSONResponse(status_code=code, content={"detail": str(exc)})


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The exception text may hold anything (a URL with a password, a 1C answer): log the
    # type and location only and answer with a fixed message.
    logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return JSONResponse(status_code=500, content={"detail": "internal server error"})


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(FieldErrors, _field_errors)  # type: ignore[arg-type]
    for kind, _code in STATUS_OF:
        app.add_exception_handler(kind, _domain_error)
    app.add_exception_handler(Exception, _unexpected_error)

"""The OpenAPI document tells the truth about what the guard answers before any route runs.

:mod:`api.core.guard` can refuse any ``/api/v1`` request with 401 (token), 403 (scope), 413
(body too large) or 422 (NUL in a path/query value) before the route's own code; those
answers are added to every operation they apply to, with the ``{"detail": ...}`` body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.core.guard import API_PREFIX, DEFAULT_BODY_LIMIT, WEBHOOK_BODY_LIMIT, WEBHOOK_PREFIX

_DETAIL = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["detail"],
            "properties": {"detail": {}},
        }
    }
}


# Constraints the routes check in code, stated in the document (descriptions and patterns a
# client or fuzzer can use; a value matching them may still be refused for a reason a schema
# cannot say, e.g. more than 1000 buckets in a window).
_BASE_URL = {
    "pattern": r"^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,4})?(/[A-Za-z0-9._~%/-]*)?$",
    "description": "http(s) URL of the 1C publication, e.g. http://1c.local/trade: no "
    "credentials, query or fragment. Moving it to another scheme, host, port or path needs "
    "the credentials in the same request.",
}
_TIMEZONE = {"description": "IANA time zone name, e.g. Europe/Moscow"}
_PARAMETERS = {
    "window": {
        "pattern": "^([1-9][0-9]{0,3}m|[1-9][0-9]{0,2}h|[1-9]d|[1-8][0-9]d|90d)$",
        "description": "A duration like 15m, 24h or 7d; at most 90d",
    },
    "bucket": {
        "pattern": "^([1-9][0-9]{0,3}m|[1-9][0-9]{0,2}h|[1-9][0-9]?d)$",
        "description": "A duration like 5m, 1h or 1d; at most 1000 buckets per window",
    },
    "cursor": {
        "description": "Opaque: the next_cursor of the previous page; anything else is a 422",
    },
}


def _describe_constraints(schema: dict[str, Any]) -> None:
    components = schema.get("components", {}).get("schemas", {})
    for name in ("IntegrationCreate", "IntegrationUpdate"):
        properties = components.get(name, {}).get("properties", {})
        for field, extra in (("base_url", _BASE_URL), ("timezone", _TIMEZONE)):
            if field in properties:
                target = properties[field]
                # Optional fields are anyOf [string, null]: constrain the string branch.
                for branch in target.get("anyOf", [target]):
                    if branch.get("type") == "string":
                        branch.update(extra)
                target.setdefault("description", extra["description"])
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                extra = _PARAMETERS.get(parameter.get("name", ""))
                if extra is None:
                    continue
                target = parameter.setdefault("schema", {})
                for branch in target.get("anyOf", [target]):
                    if branch.get("type") == "string":
                        branch.update({k: v for k, v in extra.items() if k != "description"})
                parameter.setdefault("description", extra["description"])


def _response(description: str) -> dict[str, Any]:
    return {"description": description, "content": _DETAIL}


def document_guard(app: FastAPI) -> None:
    """Make ``app.openapi()`` list the guard's answers on each operation."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith(API_PREFIX + "/"):
                continue
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                public = path == f"{API_PREFIX}/health"
                if not public:
                    responses.setdefault(
                        "401", _response("Missing, invalid or revoked bearer token")
                    )
                    responses.setdefault(
                        "403", _response("The token's scopes do not include this route")
                    )
                if method in ("post", "patch", "put"):
                    responses.setdefault("400", _response("The body could not be read as JSON"))
                    limit = (
                        WEBHOOK_BODY_LIMIT
                        if path.startswith(WEBHOOK_PREFIX)
                        else DEFAULT_BODY_LIMIT
                    )
                    responses.setdefault("413", _response(f"Body larger than {limit} bytes"))
                responses.setdefault(
                    "422", _response("Invalid input, e.g. a NUL byte in a path or query value")
                )
        _describe_constraints(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

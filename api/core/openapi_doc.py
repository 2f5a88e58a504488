"""The OpenAPI document tells the truth about what the guard answers before any route runs.

:mod:`api.core.guard` can refuse any ``/api/v1`` request with 401 (token), 403 (scope), 413
(body too large) or 422 (NUL in a path/query value) before the route's own code; those
answers are added to every operation they apply to, with the ``{"detail": ...}`` body.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from fastapi import FastAPI

from api.core.guard import API_PREFIX, DEFAULT_BODY_LIMIT, WEBHOOK_BODY_LIMIT, WEBHOOK_PREFIX
from api.core.urls import BASE_URL_PATTERN

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
    "pattern": BASE_URL_PATTERN,
    "description": "http(s) URL of the 1C publication, e.g. http://1c.local/trade: no "
    "credentials, query or fragment. Moving it to another scheme, host, port or path needs "
    "the credentials in the same request.",
}
# Every IANA name this server knows: each value the document allows is one the server takes.
_TIMEZONE = {
    "enum": sorted(available_timezones()),
    "description": "IANA time zone name, e.g. Europe/Moscow",
}
# Strings are stripped of surrounding whitespace before their length is checked, so each
# pattern asks for a visible character; credentials must also travel in a header (api_key:
# printable ASCII) or be a 1C user (no control characters; no ':' in a Basic user name).
_VISIBLE = {"pattern": r"\S"}
_API_KEY = {"pattern": r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"}
_USERNAME = {"pattern": r"^[^\x00-\x1f\x7f-\x9f:]*[^\s\x00-\x1f\x7f-\x9f:][^\x00-\x1f\x7f-\x9f:]*$"}
_PASSWORD = {"pattern": r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"}
# 16-200 characters once stripped, no control characters (as a password).
_WEBHOOK_SECRET = {
    "pattern": r"^[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{14,198}[^\s\x00-\x1f\x7f-\x9f]$"
}
_FIELDS = {
    "base_url": _BASE_URL,
    "timezone": _TIMEZONE,
    "name": _VISIBLE,
    "api_key": _API_KEY,
    "username": _USERNAME,
    "password": _PASSWORD,
    "webhook_secret": _WEBHOOK_SECRET,
}
_NOT_GIVEN = {"type": "null"}
# Which credentials and options go with which protocol and auth type (the service refuses any
# other combination with a 422 naming the field; api/services/integrations.py).
_CREDENTIAL_RULES = [
    {
        "title": "HTTP service, API key",
        "properties": {
            "protocol": {"const": "http_service"},
            "auth_type": {"const": "api_key"},
            "api_key": {"type": "string"},
            "username": _NOT_GIVEN,
            "password": _NOT_GIVEN,
            "options": _NOT_GIVEN,
        },
        "required": ["api_key"],
    },
    {
        "title": "HTTP service, Basic",
        "properties": {
            "protocol": {"const": "http_service"},
            "auth_type": {"const": "basic"},
            "api_key": _NOT_GIVEN,
            "username": {"type": "string"},
            "password": {"type": "string"},
            "options": _NOT_GIVEN,
        },
        "required": ["username", "password"],
    },
    {
        "title": "OData (Basic only)",
        "properties": {
            "protocol": {"const": "odata"},
            "auth_type": {"const": "basic"},
            "api_key": _NOT_GIVEN,
            "username": {"type": "string"},
            "password": {"type": "string"},
        },
        "required": ["protocol", "username", "password"],
    },
]
_PARAMETERS = {
    "window": {
        "pattern": "^([1-9][0-9]{0,3}m|[1-9][0-9]{0,2}h|[1-9]d|[1-8][0-9]d|90d)$",
        "description": "A duration like 15m, 24h or 7d; at most 90d",
    },
    "bucket": {
        "pattern": "^([1-9][0-9]{0,3}m|[1-9][0-9]{0,2}h|[1-9][0-9]?d)$",
        "description": "A duration like 5m, 1h or 1d; widened (whole minutes) when the window "
        "would need more than 1000 buckets: the answer's bucket says which was used",
    },
}


def _describe_constraints(schema: dict[str, Any]) -> None:
    components = schema.get("components", {}).get("schemas", {})
    for name in ("IntegrationCreate", "IntegrationUpdate"):
        properties = components.get(name, {}).get("properties", {})
        for field, extra in _FIELDS.items():
            if field in properties:
                target = properties[field]
                # Optional fields are anyOf [string, null]: constrain the string branch.
                for branch in target.get("anyOf", [target]):
                    if branch.get("type") == "string":
                        branch.update({k: v for k, v in extra.items() if k != "description"})
                if "description" in extra:
                    target.setdefault("description", extra["description"])
    if "IntegrationCreate" in components:
        components["IntegrationCreate"]["oneOf"] = _CREDENTIAL_RULES
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

"""Stored 1C credentials are bound to their endpoint.

Without this, anyone allowed to PATCH an integration could point ``base_url`` at a host of
their choosing and have ``test-connection`` (or the next sync) send it the stored API key or
Basic ``user:password``. So a ``base_url`` that moves to another scheme, host, port or path
needs the credentials entered again in the same request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from api.core.errors import FieldErrors

_DEFAULT_PORTS = {"http": 80, "https": 443}
_CREDENTIALS = {"api_key": ("api_key",), "basic": ("username", "password")}


def endpoint(base_url: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path) of a base URL, with defaults filled in and case folded."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def check_endpoint_binding(
    stored_base_url: str, stored_auth_type: str, changes: dict[str, Any]
) -> None:
    """422 naming the credential fields a ``base_url`` change must carry but does not."""
    new_url = changes.get("base_url")
    if not new_url or endpoint(new_url) == endpoint(stored_base_url):
        return
    auth_type = changes.get("auth_type") or stored_auth_type
    missing = [f for f in _CREDENTIALS.get(auth_type, ()) if not changes.get(f)]
    if missing:
        raise FieldErrors(
            [
                (
                    field,
                    "required when base_url moves to another scheme, host, port or path: "
                    "the stored credentials are only sent to the endpoint they were entered for",
                )
                for field in missing
            ]
        )

"""What can go wrong talking to 1C, as a small hierarchy::

    OneCError                   anything the 1C client raises
    ├── OneCAuthError           401/403: wrong API key, user or password
    ├── OneCNotFound            404: wrong base URL, or the HTTP service is not published
    ├── OneCValidationError     422 (or 400): 1C refused the request; ``.message`` is 1C's text
    ├── OneCUnavailable         connect errors, timeouts, 429, 5xx that outlived the retries
    ├── CircuitOpenError        the integration's circuit breaker is open; ``.retry_at``
    ├── OneCProtocolError       the answer is not the JSON the contract promises
    └── OneCSettingsError       the stored settings cannot make a request (nothing was sent)

Messages say what 1C said: a plain-text body as is (1C's errors are Russian), an HTML page
reduced to its ``<title>``, always cut short. Credentials never appear in them.
"""

from __future__ import annotations

import re
from datetime import datetime

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"\s+")
EXCERPT_CHARS = 200


def describe_body(body: bytes, limit: int = EXCERPT_CHARS) -> str:
    """A short, safe, single-line account of a response body for an error message."""
    if not body:
        return "(empty body)"
    head = body[:4096]
    if b"<html" in head.lower() or b"<!doctype html" in head.lower():
        title = _TITLE.search(head)
        text = title.group(1).decode("utf-8", "replace") if title else "(no title)"
        return "HTML page: " + _SPACES.sub(" ", text).strip()[:limit]
    text = _SPACES.sub(" ", head.decode("utf-8-sig", "replace")).strip()
    return text[:limit] + ("…" if len(text) > limit or len(body) > len(head) else "")


class OneCError(Exception):
    """Base of every 1C client error; ``status_code`` is set when 1C answered."""

    def __init__(
        self, message: str, *, integration_id: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.integration_id = integration_id
        self.status_code = status_code


class OneCAuthError(OneCError):
    """1C refused the credentials (401 or 403)."""


class OneCNotFound(OneCError):
    """404: the base URL or the ``/hs/api`` publication is wrong."""


class OneCValidationError(OneCError):
    """1C refused the request as invalid; ``message`` is what 1C said."""

    def __init__(
        self,
        message: str,
        *,
        onec_message: str,
        integration_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, integration_id=integration_id, status_code=status_code)
        self.message = onec_message


class OneCUnavailable(OneCError):
    """1C stayed unreachable or failing through every retry; says the last status or cause."""

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        last_cause: str,
        integration_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, integration_id=integration_id, status_code=status_code)
        self.attempts = attempts
        self.last_cause = last_cause


class CircuitOpenError(OneCError):
    """The circuit breaker refused the call; ``retry_at`` is when a probe will be let through,
    ``first_error`` the error that started the failure streak that opened it (the message
    leads with it)."""

    def __init__(
        self,
        message: str,
        *,
        retry_at: datetime | None,
        integration_id: str | None = None,
        first_error: str | None = None,
    ) -> None:
        super().__init__(message, integration_id=integration_id)
        self.retry_at = retry_at
        self.first_error = first_error


class OneCProtocolError(OneCError):
    """1C answered, but not with the JSON the contract promises; ``excerpt`` quotes it."""

    def __init__(
        self,
        message: str,
        *,
        excerpt: str,
        integration_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, integration_id=integration_id, status_code=status_code)
        self.excerpt = excerpt


class OneCSettingsError(OneCError):
    """The integration's stored settings cannot make a request to 1C at all (a credential
    saved before input was validated that no HTTP header can carry); nothing was sent."""

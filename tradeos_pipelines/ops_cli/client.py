"""The operator CLI's only way into the system: the sidecar's REST API and WebSocket.

The CLI never opens the database or Redis itself, so it works the same against the local dev
stack and a remote deployment: give it the sidecar's URL and a token.

Where they come from, first found wins:

- URL: ``--url``, ``TRADEOS_API_URL``, else ``http://127.0.0.1:8000`` (the dev stack);
- token: ``--token``, ``TRADEOS_TOKEN``, ``TRADEOS_ADMIN_TOKEN``, else the dev stack's
  ``<TRADEOS_DATA_DIR or .tradeos>/admin.token``.

Errors (each maps to one exit code of the CLI)::

    SidecarError
    ├── SidecarUnreachable   no answer at the URL (exit 3)
    ├── BadRequest           the sidecar refused the request: 4xx (exit 2)
    │   └── UnknownIntegration   404 for an integration id; carries the valid ids
    └── ServerError          5xx or an answer that is not JSON (exit 1)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from tradeos_pipelines.core.settings import PROJECT_ROOT

DEFAULT_API_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
# 1C connection tests wait up to the integration's timeout; syncs are only launched here.
REQUEST_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 5.0


class SidecarError(Exception):
    """Something the CLI reports in one line."""


class SidecarUnreachable(SidecarError):
    """Nothing answered at the sidecar's URL."""


class BadRequest(SidecarError):
    """The sidecar refused the request (4xx); the message is its ``detail``."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class UnknownIntegration(BadRequest):
    """No integration has this id; ``valid`` lists the ids that exist."""

    def __init__(self, integration_id: str, valid: list[str]) -> None:
        choices = ", ".join(valid) if valid else "none exist yet (tradeos integrations add)"
        super().__init__(f"unknown integration {integration_id!r}; valid: {choices}", 404)
        self.valid = valid


class ServerError(SidecarError):
    """The sidecar failed (5xx) or answered something that is not JSON."""


@dataclass(frozen=True)
class Target:
    """Where the sidecar is and how to authenticate."""

    url: str
    token: str | None
    token_source: str

    @property
    def ws_url(self) -> str:
        """``ws(s)://host:port/ws``: the REST port serves the WebSocket too."""
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


def resolve_target(url: str | None, token: str | None) -> Target:
    """The sidecar URL and token from flags, environment or the dev stack's token file."""
    api_url = (url or os.environ.get("TRADEOS_API_URL") or DEFAULT_API_URL).rstrip("/")
    if token:
        return Target(api_url, token, "--token")
    for name in ("TRADEOS_TOKEN", "TRADEOS_ADMIN_TOKEN"):
        if os.environ.get(name):
            return Target(api_url, os.environ[name], name)
    data_dir = Path(os.environ.get("TRADEOS_DATA_DIR") or PROJECT_ROOT / ".tradeos")
    token_file = data_dir / "admin.token"
    if token_file.is_file():
        return Target(api_url, token_file.read_text().strip(), str(token_file))
    return Target(api_url, None, "none")


class SidecarClient:
    """A thin synchronous client of ``/api/v1`` that turns failures into :class:`SidecarError`."""

    def __init__(self, target: Target, *, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.target = target
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        self._http = httpx.Client(
            base_url=target.url + API_PREFIX,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SidecarClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; the decoded JSON answer (None for 204)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise SidecarUnreachable(
                f"sidecar unreachable at {self.target.url} ({type(exc).__name__}: {exc})"
            ) from None
        if response.status_code == 204:
            return None
        if response.status_code == 401:
            raise BadRequest(
                f"the sidecar at {self.target.url} refused the token "
                f"(from {self.target.token_source}): {_detail(response)}; "
                "pass --token or set TRADEOS_TOKEN",
                401,
            )
        if 400 <= response.status_code < 500:
            raise BadRequest(_detail(response), response.status_code)
        if response.status_code >= 500:
            raise ServerError(
                f"the sidecar at {self.target.url} failed: HTTP {response.status_code}: "
                f"{_detail(response)}"
            )
        try:
            return response.json()
        except ValueError:
            raise ServerError(
                f"{self.target.url}{API_PREFIX}{path} answered HTTP {response.status_code} "
                "with something that is not JSON; is this URL a TradeOS sidecar?"
            ) from None

    def integration_ids(self) -> list[str]:
        """Every integration id, for the list of valid choices."""
        return [row["id"] for row in self.request("GET", "/integrations")["data"]]

    def for_integration(self, method: str, integration_id: str, suffix: str = "", **kw: Any) -> Any:
        """A request under ``/integrations/{id}``; a 404 names the integrations that exist."""
        path = f"/integrations/{quote(integration_id, safe='')}{suffix}"
        try:
            return self.request(method, path, **kw)
        except BadRequest as exc:
            if exc.status_code == 404 and integration_id not in self.integration_ids():
                raise UnknownIntegration(integration_id, self.integration_ids()) from None
            raise


def _detail(response: httpx.Response) -> str:
    """The ``detail`` of an error answer, flattened to one line (422 lists every field)."""
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200].strip()}"
    if isinstance(detail, list):  # FastAPI's validation errors
        parts = []
        for err in detail:
            where = ".".join(str(p) for p in err.get("loc", []) if p != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return "; ".join(parts)
    return str(detail)

"""Token scopes: what a bearer token may do.

``admin``              everything (the ``TRADEOS_ADMIN_TOKEN`` and tokens created without
                       ``--scope``);
``read``               ``GET``/``HEAD`` routes only — dashboards, monitoring;
``webhook:<id>``       ``POST /api/v1/webhooks/1c/<id>`` only — the token configured in that
                       1C infobase, which cannot read or change anything else.
"""

from __future__ import annotations

from collections.abc import Iterable

WEBHOOK_ROUTE = "/api/v1/webhooks/1c/"
READ_METHODS = frozenset({"GET", "HEAD"})


def required_scope(method: str, path: str) -> str:
    """The scope a request to ``method path`` needs."""
    if path.startswith(WEBHOOK_ROUTE):
        integration_id = path[len(WEBHOOK_ROUTE) :].split("/", 1)[0]
        return f"webhook:{integration_id}"
    return "read" if method in READ_METHODS else "admin"


def scope_allows(granted: Iterable[str], needed: str) -> bool:
    """Whether a token holding ``granted`` scopes may do what ``needed`` names."""
    granted = set(granted)
    return "admin" in granted or needed in granted

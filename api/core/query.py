"""Unknown query parameters are a 422 naming them, not silently ignored.

``GET /sync-logs?integraton_id=main-1c`` (a typo) would otherwise answer every integration's
logs as if filtered; the OpenAPI document lists each route's parameters as all there are, so
a client or fuzzer sending another one is told so.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.core.errors import FieldErrors


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters of a route and of every dependency it has."""
    names = {field.alias for field in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


# route object id -> its query parameter names (routes live as long as the app).
_known_by_route: dict[int, frozenset[str]] = {}


def _known(route: APIRoute) -> frozenset[str]:
    known = _known_by_route.get(id(route))
    if known is None:
        known = _known_by_route[id(route)] = frozenset(_query_names(route.dependant))
    return known


def reject_unknown_query(request: Request) -> None:
    """Raise a 422 naming each query parameter the matched route does not take."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return
    known = _known(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "no query parameters"
        raise FieldErrors(
            [(name, f"unknown query parameter; this route takes {takes}") for name in unknown],
            location="query",
        )

"""Dependencies shared by the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import redis.asyncio as aioredis
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer
from sqlalchemy.orm import Session

from api.core.auth import TokenIdentity, authenticate_cached, bearer_token, unauthorized
from api.core.runtime import Runtime
from tradeos_pipelines.storage.database import session_scope

# Only declares the scheme in OpenAPI (the "Authorize" button of /docs); checking is ours.
_bearer_scheme = HTTPBearer(auto_error=False, description="A token from `tradeos token create`")


T = TypeVar("T")


async def in_session(work: Callable[[Session], T]) -> T:
    """Run ``work`` with a committed-on-success session in one threadpool hop.

    The one way a route (or a service called from one) reaches the database: the session is
    committed before the answer is sent, so a client reading right after its own write sees
    it, and the whole piece of work costs one threadpool hop (a sync route with a session
    dependency costs several).
    """

    def run() -> T:
        with session_scope() as session:
            return work(session)

    return await run_in_threadpool(run)


def get_runtime(request: Request) -> Runtime:
    """The process-wide Redis clients, relay and watcher started by the lifespan."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_redis(runtime: RuntimeDep) -> aioredis.Redis:
    return runtime.redis


RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]


async def require_token(
    request: Request, _scheme: Annotated[object, Depends(_bearer_scheme)] = None
) -> TokenIdentity:
    """401 unless the request carries a valid bearer token (async: no threadpool hop)."""
    # The guard middleware has checked the token before the body was read.
    checked = request.scope.get("state", {}).get("identity")
    if isinstance(checked, TokenIdentity):
        return checked
    token = bearer_token(request)
    if token is None:
        raise unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    identity = await authenticate_cached(token, request.app.state.runtime.redis)
    if identity is None:
        raise unauthorized("invalid or revoked token")
    return identity


CurrentToken = Annotated[TokenIdentity, Depends(require_token)]

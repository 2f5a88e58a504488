"""Bearer-token authentication for REST routes and the WebSocket.

Accepted: ``TRADEOS_ADMIN_TOKEN`` (compared in constant time) or a live token created with
``tradeos token create``. Anything else is a 401 with a JSON body (REST) or close 1008 (WS).

A stored token found valid is remembered in the process for ``TOKEN_CACHE_SECONDS`` (by its
SHA-256), so a busy client costs a Redis GET per request instead of a database read in the
threadpool. ``tradeos token revoke`` bumps a Redis counter that every cached entry is checked
against, so revocation applies at once; with Redis unreachable, within ``TOKEN_CACHE_SECONDS``.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.storage.database import session_scope
from tradeos_pipelines.storage.tokens import hash_token, revocations_key, verify_stored_token

ADMIN_TOKEN_NAME = "TRADEOS_ADMIN_TOKEN"
TOKEN_CACHE_SECONDS = 5.0
# Bounds the cache against a flood of distinct valid tokens (there are only a handful).
TOKEN_CACHE_MAX = 10_000


@dataclass(frozen=True)
class TokenIdentity:
    """Who made the request: the admin token or a named stored token."""

    name: str
    token_id: int | None = None
    scopes: tuple[str, ...] = ("admin",)


def authenticate(token: str | None, session: Session | None = None) -> TokenIdentity | None:
    """The identity of ``token``, or None when it is missing, unknown or revoked."""
    if not token:
        return None
    admin = get_settings().admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return TokenIdentity(ADMIN_TOKEN_NAME)
    if session is not None:
        info = verify_stored_token(session, token)
    else:
        with session_scope() as own:
            info = verify_stored_token(own, token)
    return TokenIdentity(info.name, info.id, info.scopes) if info else None


# token hash -> (expires at, revocation counter seen before the check, identity)
_valid_tokens: dict[str, tuple[float, bytes | None, TokenIdentity]] = {}


async def authenticate_cached(
    token: str | None, redis: aioredis.Redis | None = None
) -> TokenIdentity | None:
    """:func:`authenticate` without a database read for a token checked in the last seconds.

    ``redis`` (the sidecar's client) carries the revocation counter; without it, or with
    Redis down, a cached token is trusted until its entry expires.
    """
    if not token:
        return None
    settings = get_settings()
    admin = settings.admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return TokenIdentity(ADMIN_TOKEN_NAME)
    revocations: bytes | None = None
    if redis is not None:
        try:
            revocations = await redis.get(revocations_key(settings.redis_namespace))
        except RedisError:
            revocations = None
    key = hash_token(token)
    now = time.monotonic()
    hit = _valid_tokens.get(key)
    if hit is not None and hit[0] > now and hit[1] == revocations:
        return hit[2]
    identity = await run_in_threadpool(authenticate, token)
    if identity is None:
        _valid_tokens.pop(key, None)
        return None
    if len(_valid_tokens) >= TOKEN_CACHE_MAX:
        _valid_tokens.clear()
    _valid_tokens[key] = (now + TOKEN_CACHE_SECONDS, revocations, identity)
    return identity


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def unauthorized(message: str) -> HTTPException:
    """A 401 that tells the client which scheme to use."""
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=message,
        headers={"WWW-Authenticate": "Bearer"},
    )

"""Bearer-token authentication for REST routes and the WebSocket.

Accepted: ``TRADEOS_ADMIN_TOKEN`` (compared in constant time) or a live token created with
``tradeos token create``. Anything else is a 401 with a JSON body (REST) or close 1008 (WS).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from sqlalchemy.orm import Session

from api.tokens import verify_stored_token
from tradeos_pipelines.db.engine import session_scope
from tradeos_pipelines.settings import get_settings

ADMIN_TOKEN_NAME = "TRADEOS_ADMIN_TOKEN"


@dataclass(frozen=True)
class TokenIdentity:
    """Who made the request: the admin token or a named stored token."""

    name: str
    token_id: int | None = None


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
    return TokenIdentity(info.name, info.id) if info else None


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

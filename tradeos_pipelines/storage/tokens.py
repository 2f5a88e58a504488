"""Bearer tokens of the sidecar: created and revoked from the command line, stored hashed.

A token is a long random secret shown once by :func:`create_token`; the database keeps only
its SHA-256, so a leaked database does not leak working tokens. ``TRADEOS_ADMIN_TOKEN`` (for
automation and first start) is checked separately in :mod:`api.core.auth`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.storage.database import session_scope
from tradeos_pipelines.storage.tables import ApiToken

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "tos_"
# last_used_at is informative only; writing it on every request would turn reads into writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenNotFound(LookupError):
    """No token has this id."""


@dataclass(frozen=True)
class TokenInfo:
    """A stored token without its secret."""

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    scopes: tuple[str, ...] = ("admin",)


def hash_token(token: str) -> str:
    """The stored form of a token (hex SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(
        row.id,
        row.name,
        row.created_at,
        row.last_used_at,
        row.revoked_at,
        tuple((row.scopes or "admin").split()),
    )


_SCOPE = re.compile(r"admin|read|webhook:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalize_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Validated, de-duplicated scopes; raises ValueError naming a bad one."""
    result = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    if not result:
        raise ValueError("a token needs at least one scope: admin, read or webhook:<integration>")
    for scope in result:
        if not _SCOPE.fullmatch(scope):
            raise ValueError(
                f"unknown scope {scope!r}; expected admin, read or webhook:<integration id>"
            )
    return result


def create_token(
    name: str, *, scopes: Iterable[str] = ("admin",), database_url: str | None = None
) -> str:
    """Create a token named ``name`` with ``scopes``; returns the secret, shown only once."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValueError("token name must be 1..100 characters")
    granted = normalize_scopes(scopes)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with session_scope(database_url) as session:
        session.add(ApiToken(name=name, token_hash=hash_token(token), scopes=" ".join(granted)))
    return token


def list_tokens(*, database_url: str | None = None) -> list[TokenInfo]:
    """Every token (revoked ones too), oldest first."""
    with session_scope(database_url) as session:
        return [_info(row) for row in session.scalars(select(ApiToken).order_by(ApiToken.id))]


def revocations_key(namespace: str) -> str:
    """Redis counter bumped on every revocation: sidecars drop their valid-token caches."""
    return f"{namespace}:api-tokens:revocations"


def revoke_token(token_id: int, *, database_url: str | None = None) -> TokenInfo:
    """Revoke a token by id (idempotent); raises :class:`TokenNotFound`."""
    with session_scope(database_url) as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise TokenNotFound(f"token {token_id} does not exist")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
        session.flush()
        info = _info(row)
    _announce_revocation()
    return info


def _announce_revocation() -> None:
    settings = get_settings()
    if not settings.redis_url:
        # Sidecars still drop cached tokens within seconds, but open sockets stay until their
        # periodic check: say so instead of skipping silently.
        logger.warning(
            "TRADEOS_REDIS_URL is not set: sidecars were not told of the revocation "
            "(they notice within about 10 s)"
        )
        return
    try:
        with redis.Redis.from_url(settings.redis_url, socket_timeout=3) as client:
            client.incr(revocations_key(settings.redis_namespace))
    except RedisError as exc:  # sidecars still forget cached tokens within seconds
        logger.warning("could not announce the revocation to sidecars (%s)", type(exc).__name__)


def revoked_among(token_ids: set[int], *, database_url: str | None = None) -> set[int]:
    """Those of ``token_ids`` that are revoked (or no longer exist)."""
    if not token_ids:
        return set()
    with session_scope(database_url) as session:
        live = set(
            session.scalars(
                select(ApiToken.id).where(ApiToken.id.in_(token_ids), ApiToken.revoked_at.is_(None))
            )
        )
    return token_ids - live


def verify_stored_token(session: Session, token: str) -> TokenInfo | None:
    """The live (not revoked) token matching ``token``, stamping its last use; else None."""
    row = session.scalars(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    now = datetime.now(UTC)
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        session.commit()
    return _info(row)

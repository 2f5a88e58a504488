"""Integration administration: create, change, enable, delete; secrets encrypted at rest.

Credentials and the webhook secret are Fernet-encrypted (``tradeos_pipelines.core.secrets``) and
leave this module only masked (``"***"``), except the webhook secret in the answer to create,
which the 1C administrator needs once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.core.errors import Conflict, FieldErrors
from api.core.slugs import slugify
from api.schemas.integration import (
    MASK,
    IntegrationCreate,
    IntegrationOptions,
    IntegrationPublic,
    IntegrationsPublic,
    IntegrationUpdate,
)
from api.schemas.sync import SyncLaunched
from api.services import integration_health
from api.services.endpoint_binding import check_endpoint_binding
from tradeos_pipelines.core.integration import IntegrationNotFound
from tradeos_pipelines.core.secrets import decrypt_json, encrypt_json, encrypt_text
from tradeos_pipelines.event_bus import AsyncRedisEventBus
from tradeos_pipelines.launch import SyncLaunch, request_sync
from tradeos_pipelines.storage.database import session_scope
from tradeos_pipelines.storage.tables import Integration, IntegrationLog


class IntegrationExists(Conflict):
    """The id is taken."""


class IntegrationDisabled(Conflict):
    """The integration is switched off; it does not sync on request either."""


def webhook_path(integration_id: str) -> str:
    """Where 1C posts its change notifications for this integration."""
    return f"/api/v1/webhooks/1c/{integration_id}"


def to_public(row: Integration, *, webhook_secret: str | None = None) -> IntegrationPublic:
    """The API view of a row; ``webhook_secret`` only when it is shown once, on create."""
    credentials = decrypt_json(row.credentials_encrypted)
    return IntegrationPublic(
        id=row.id,
        name=row.name,
        base_url=row.base_url,
        auth_type=row.auth_type,  # type: ignore[arg-type]
        api_key=MASK if credentials.get("api_key") else None,
        username=credentials.get("username"),
        password=MASK if credentials.get("password") else None,
        webhook_secret=webhook_secret or (MASK if row.webhook_secret_encrypted else None),
        webhook_path=webhook_path(row.id),
        enabled=row.enabled,
        timezone=row.timezone,
        conflict_policy=row.conflict_policy,  # type: ignore[arg-type]
        cache_ttl_seconds=row.cache_ttl_seconds,
        page_size=row.page_size,
        timeout_seconds=float(row.timeout_seconds),
        retry_budget_seconds=float(row.retry_budget_seconds),
        protocol=row.protocol,  # type: ignore[arg-type]
        options=IntegrationOptions(**row.options) if row.protocol == "odata" else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _credentials(auth_type: str, given: dict[str, Any]) -> dict[str, str]:
    """The credentials object for ``auth_type``, or a 422 naming the missing field."""
    if auth_type == "api_key":
        if not given.get("api_key"):
            raise FieldErrors([("api_key", "required when auth_type is api_key")])
        stray = [f for f in ("username", "password") if given.get(f)]
        if stray:
            raise FieldErrors([(f, "not used when auth_type is api_key") for f in stray])
        return {"api_key": given["api_key"]}
    missing = [f for f in ("username", "password") if not given.get(f)]
    if missing:
        raise FieldErrors([(f, "required when auth_type is basic") for f in missing])
    if given.get("api_key"):
        raise FieldErrors([("api_key", "not used when auth_type is basic")])
    return {"username": given["username"], "password": given["password"]}


def _protocol_options(
    protocol: str, auth_type: str, options: IntegrationOptions | None
) -> dict[str, Any]:
    """The stored ``options`` for ``protocol``, or a 422 naming the field that does not fit."""
    if protocol == "odata":
        if auth_type != "basic":
            raise FieldErrors(
                [("auth_type", "the 1C OData interface takes only basic (a 1C user and password)")]
            )
        return (options or IntegrationOptions()).model_dump(mode="json")
    if options is not None:
        raise FieldErrors([("options", "used only when protocol is odata")])
    return {}


def list_integrations(session: Session) -> list[Integration]:
    """Every integration, by id."""
    return list(session.scalars(select(Integration).order_by(Integration.id)))


def get_integration(session: Session, integration_id: str) -> Integration:
    """One integration or :class:`IntegrationNotFound`."""
    row = session.get(Integration, integration_id)
    if row is None:
        raise IntegrationNotFound(f"integration {integration_id!r} does not exist")
    return row


def create_integration(session: Session, body: IntegrationCreate) -> tuple[Integration, str]:
    """Store a new integration; returns it with its webhook secret (generated if not given)."""
    # A name with no letters or digits ("!!!") still gets a stable id of its own.
    integration_id = (
        body.id
        or slugify(body.name)
        or "integration-"
        + hashlib.sha256(body.name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    )
    if session.get(Integration, integration_id) is not None:
        raise IntegrationExists(f"integration {integration_id!r} already exists")
    credentials = _credentials(body.auth_type, body.model_dump())
    options = _protocol_options(body.protocol, body.auth_type, body.options)
    webhook_secret = body.webhook_secret or secrets.token_urlsafe(32)
    row = Integration(
        id=integration_id,
        name=body.name,
        base_url=body.base_url,
        auth_type=body.auth_type,
        credentials_encrypted=encrypt_json(credentials),
        webhook_secret_encrypted=encrypt_text(webhook_secret),
        enabled=body.enabled,
        timezone=body.timezone,
        conflict_policy=body.conflict_policy,
        cache_ttl_seconds=body.cache_ttl_seconds,
        page_size=body.page_size,
        timeout_seconds=body.timeout_seconds,
        retry_budget_seconds=body.retry_budget_seconds,
        protocol=body.protocol,
        options=options,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # created concurrently under the same id
        session.rollback()
        raise IntegrationExists(f"integration {integration_id!r} already exists") from None
    session.refresh(row)
    return row, webhook_secret


_PLAIN_FIELDS = (
    "name",
    "base_url",
    "enabled",
    "timezone",
    "conflict_policy",
    "cache_ttl_seconds",
    "page_size",
    "timeout_seconds",
    "retry_budget_seconds",
)


def update_integration(
    session: Session, integration_id: str, body: IntegrationUpdate
) -> Integration:
    """Apply a partial change; credentials are merged with the stored ones and re-validated."""
    row = get_integration(session, integration_id)
    changes = body.model_dump(exclude_unset=True)
    check_endpoint_binding(row.base_url, row.auth_type, changes)
    for name in _PLAIN_FIELDS:
        if name in changes:
            if changes[name] is None:
                raise FieldErrors([(name, "cannot be null")])
            setattr(row, name, changes[name])
    credential_fields = {"auth_type", "api_key", "username", "password"} & changes.keys()
    if credential_fields:
        auth_type = changes.get("auth_type") or row.auth_type
        # Same auth type: a patch may change one credential; a new type needs all of its own.
        stored = decrypt_json(row.credentials_encrypted) if auth_type == row.auth_type else {}
        merged = {**stored, **{k: v for k, v in changes.items() if k in credential_fields}}
        row.auth_type = auth_type
        row.credentials_encrypted = encrypt_json(_credentials(auth_type, merged))
    if {"protocol", "options", "auth_type"} & changes.keys():
        if changes.get("protocol", row.protocol) is None:
            raise FieldErrors([("protocol", "cannot be null")])
        protocol = changes.get("protocol") or row.protocol
        given = body.options
        if given is None and protocol == row.protocol == "odata" and "options" not in changes:
            given = IntegrationOptions(**row.options)
        row.options = _protocol_options(protocol, row.auth_type, given)
        row.protocol = protocol
    if changes.get("webhook_secret"):
        row.webhook_secret_encrypted = encrypt_text(changes["webhook_secret"])
    row.updated_at = datetime.now(UTC)
    session.flush()
    return row


def set_enabled(session: Session, integration_id: str, enabled: bool) -> Integration:
    """Switch scheduled and sensor-driven syncs of an integration on or off."""
    row = get_integration(session, integration_id)
    row.enabled = enabled
    row.updated_at = datetime.now(UTC)
    session.flush()
    return row


def delete_integration(session: Session, integration_id: str) -> None:
    """Delete an integration with all its data (foreign keys cascade) and its request log."""
    row = get_integration(session, integration_id)
    # integration_logs has no foreign key (attempts are logged in batches): delete explicitly.
    session.execute(delete(IntegrationLog).where(IntegrationLog.integration_id == integration_id))
    session.delete(row)
    session.flush()


def list_public(session: Session) -> IntegrationsPublic:
    """Every integration as the API shows it (secrets masked)."""
    rows = list_integrations(session)
    return IntegrationsPublic(data=[to_public(r) for r in rows], count=len(rows))


def create_public(session: Session, body: IntegrationCreate) -> IntegrationPublic:
    """Create an integration; the answer shows its webhook secret this once."""
    row, webhook_secret = create_integration(session, body)
    return to_public(row, webhook_secret=webhook_secret)


def _launch_manual(integration_id: str, entities: list[str], full: bool) -> SyncLaunch:
    with session_scope() as session:
        if not get_integration(session, integration_id).enabled:
            raise IntegrationDisabled(
                f"integration {integration_id!r} is disabled; enable it first"
            )
    return request_sync(integration_id, entities, full=full, source="manual")


async def sync_now(
    redis: aioredis.Redis, integration_id: str, entities: list[str], *, full: bool
) -> SyncLaunched:
    """ "Sync now": Dagster runs at once, or a queued request while Dagster is down."""
    launched = await run_in_threadpool(_launch_manual, integration_id, entities, full)
    if launched.request_id is not None:
        await integration_health.forget(redis, integration_id)  # now shows it waiting
    return SyncLaunched(run_ids=launched.run_ids, request_id=launched.request_id)


async def announce_changed(redis: aioredis.Redis, integration_id: str, change: str) -> None:
    """Tell live clients an integration was created, changed, switched or deleted
    (``integration.changed`` on ``integration_status``): a dashboard re-reads it instead of
    showing the old name or ``base_url``. Announced after the commit, so a re-read sees it."""
    await integration_health.forget(redis, integration_id)
    await AsyncRedisEventBus(redis).publish(
        "integration_status",
        "integration.changed",
        {"integration_id": integration_id, "change": change},
    )

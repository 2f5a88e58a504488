"""Reading integrations with their credentials decrypted, for the 1C client and the sync engine.

The sidecar owns writing them (``api/``); everything that talks to 1C reads them here.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from tradeos_pipelines.core.integration import IntegrationConfig, IntegrationNotFound
from tradeos_pipelines.core.secrets import decrypt_json, decrypt_text
from tradeos_pipelines.storage.tables import Integration


def to_config(row: Integration) -> IntegrationConfig:
    """Decrypt one ``integrations`` row."""
    credentials = decrypt_json(row.credentials_encrypted)
    timeout = row.timeout_seconds
    return IntegrationConfig(
        id=row.id,
        name=row.name,
        base_url=row.base_url,
        auth_type=row.auth_type,
        enabled=row.enabled,
        timezone=row.timezone,
        conflict_policy=row.conflict_policy,
        cache_ttl_seconds=row.cache_ttl_seconds,
        page_size=row.page_size,
        timeout_seconds=float(timeout) if isinstance(timeout, Decimal) else timeout,
        retry_budget_seconds=float(row.retry_budget_seconds),
        protocol=row.protocol,
        options=dict(row.options or {}),
        api_key=credentials.get("api_key"),
        username=credentials.get("username"),
        password=credentials.get("password"),
        webhook_secret=(
            decrypt_text(row.webhook_secret_encrypted) if row.webhook_secret_encrypted else None
        ),
    )


def load_integration(session: Session, integration_id: str) -> IntegrationConfig:
    """One integration by id, or :class:`IntegrationNotFound`."""
    row = session.get(Integration, integration_id)
    if row is None:
        raise IntegrationNotFound(f"integration {integration_id!r} does not exist")
    return to_config(row)


def list_integration_ids(session: Session, *, enabled_only: bool = True) -> list[str]:
    """Ids of the integrations (enabled ones by default), sorted."""
    query = select(Integration.id).order_by(Integration.id)
    if enabled_only:
        query = query.where(Integration.enabled.is_(True))
    return list(session.scalars(query))

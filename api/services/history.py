"""Product history and restoring an integration's products, for the sidecar's routes."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from api.services import integrations as integration_service
from tradeos_pipelines.engine.restore import product_history, restore_integration
from tradeos_pipelines.storage.database import session_scope


def read_history(session: Session, integration_id: str, onec_id: uuid.UUID) -> dict[str, Any]:
    """Which sync changed which field of the product from what to what, oldest first."""
    integration_service.get_integration(session, integration_id)  # a clear 404 first
    return product_history(session, integration_id, onec_id)


def restore(integration_id: str, to_version: int, *, dry_run: bool) -> dict[str, Any]:
    """Plan (``dry_run``) or apply the restore of every product to ``to_version``."""
    with session_scope() as session:
        integration_service.get_integration(session, integration_id)
    return restore_integration(integration_id, to_version, dry_run=dry_run).as_dict()

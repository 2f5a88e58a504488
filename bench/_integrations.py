"""The integrations a bench syncs, written straight into its TradeOS database (the benches
measure the engine and Dagster, not the admin API)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def add_integrations(
    ids: Iterable[str],
    base_url: str,
    credentials: dict[str, str],
    *,
    database_url: str | None = None,
    **columns: Any,
) -> None:
    """One integration per id, named after it: ``credentials`` (an ``api_key``, or a
    ``username`` and ``password``) decide the auth type; ``columns`` set the rest
    (``page_size``, ``protocol``, ``options``, ``enabled``…). The database is the
    settings' one unless ``database_url`` is given."""
    from tradeos_pipelines.core.secrets import encrypt_json
    from tradeos_pipelines.storage.database import session_scope
    from tradeos_pipelines.storage.tables import Integration

    auth_type = "api_key" if "api_key" in credentials else "basic"
    with session_scope(database_url) as session:
        for integration_id in ids:
            session.add(
                Integration(
                    id=integration_id,
                    name=integration_id,
                    base_url=base_url,
                    auth_type=auth_type,
                    credentials_encrypted=encrypt_json(credentials),
                    **columns,
                )
            )

"""The database layer: models, engines and migrations."""

from typing import Any

from tradeos_pipelines.storage.database import get_engine, session_scope

__all__ = ["get_engine", "session_scope", "upgrade_to_head"]


def __getattr__(name: str) -> Any:
    # Alembic loads only for migrations: a Dagster run process imports this package and must
    # not pay for it (tests/dagster/test_import_budget.py).
    if name == "upgrade_to_head":
        from tradeos_pipelines.storage.migrate import upgrade_to_head

        return upgrade_to_head
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The database layer: models, engines and migrations."""

from tradeos_pipelines.storage.database import get_engine, session_scope
from tradeos_pipelines.storage.migrate import upgrade_to_head

__all__ = ["get_engine", "session_scope", "upgrade_to_head"]

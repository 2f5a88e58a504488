"""Run the Alembic migrations from code (stack start, tests) as the CLI does."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from tradeos_pipelines.core.settings import PROJECT_ROOT, normalize_database_url


def alembic_config(url: str | None = None) -> Config:
    """The project's Alembic config, optionally bound to ``url``."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option(
        "script_location", str(PROJECT_ROOT / "tradeos_pipelines/storage/migrations")
    )
    if url:
        # Alembic's config is ConfigParser-based, so a literal % must be doubled.
        config.set_main_option("sqlalchemy.url", normalize_database_url(url).replace("%", "%%"))
    return config


def upgrade_to_head(url: str | None = None) -> None:
    """Apply every migration not yet applied."""
    command.upgrade(alembic_config(url), "head")


def downgrade_to_base(url: str | None = None) -> None:
    """Undo every migration (used by the migrations test)."""
    command.downgrade(alembic_config(url), "base")

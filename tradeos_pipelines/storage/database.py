"""Engines and sessions. One engine per URL per process; everything else asks here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from tradeos_pipelines.core.settings import get_settings, normalize_database_url


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    """A pooled engine for ``url`` (default: ``TRADEOS_DATABASE_URL``)."""
    resolved = normalize_database_url(url) if url else get_settings().require_database_url()
    # pre_ping: PostgreSQL restarts and idle-timeouts must not fail the next sync.
    return create_engine(resolved, pool_pre_ping=True, pool_size=5, max_overflow=5)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    factory = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

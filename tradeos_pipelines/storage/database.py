"""Engines and sessions. One engine per URL per process; everything else asks here."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeVar

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tradeos_pipelines.core.settings import get_settings, normalize_database_url

log = logging.getLogger(__name__)

# How long a write that says what happened (a failed sync's log row, the last request-log
# rows) waits for a PostgreSQL that refuses connections: a restart takes seconds, and the
# record is worth that much; longer, and the caller gives up rather than hang a run.
REACHABLE_WAIT_SECONDS = 30.0

T = TypeVar("T")


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


def when_reachable(action: Callable[[], T], *, wait_s: float = REACHABLE_WAIT_SECONDS) -> T:
    """Run ``action``; while PostgreSQL cannot be reached (a restart), try again for up to
    ``wait_s`` seconds, then let the last error through. ``action`` must be safe to repeat
    (its transaction either committed or did not happen)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return action()
        except OperationalError as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("PostgreSQL unreachable (%s); trying again", str(exc.orig).strip())
            time.sleep(0.5)

"""Reading sync logs (one row per entity sync) and the request-level log of 1C calls."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.core.errors import NotFound
from api.core.pagination import newest_first
from api.schemas.sync import (
    IntegrationLogPublic,
    IntegrationLogsPublic,
    SyncLogDetail,
    SyncLogPublic,
    SyncLogsPublic,
    SyncRejectPublic,
)
from tradeos_pipelines.core.integration import IntegrationNotFound
from tradeos_pipelines.storage.tables import Integration, IntegrationLog, SyncLog, SyncReject

# Rejects shown with one sync; the rest stay in sync_rejects for SQL.
REJECTS_SHOWN = 1000


class SyncLogNotFound(NotFound):
    """No sync log has this id."""


def sync_log_public(row: SyncLog) -> SyncLogPublic:
    """The API view of a ``sync_logs`` row, with its duration."""
    duration = (
        round((row.finished_at - row.started_at).total_seconds() * 1000, 1)
        if row.finished_at is not None
        else None
    )
    return SyncLogPublic.model_validate({**_columns(row), "duration_ms": duration})


def _columns(row: SyncLog) -> dict:
    return {c.key: getattr(row, c.key) for c in SyncLog.__table__.columns}


def list_sync_logs(
    session: Session,
    *,
    integration_id: str | None,
    status: str | None,
    entity: str | None,
    limit: int,
    cursor: str | None,
) -> SyncLogsPublic:
    """Newest first, filtered, one page."""
    rows, next_cursor = newest_first(
        session,
        SyncLog,
        limit=limit,
        cursor=cursor,
        integration_id=integration_id,
        status=status,
        entity=entity,
    )
    return SyncLogsPublic(
        data=[sync_log_public(r) for r in rows], count=len(rows), next_cursor=next_cursor
    )


def get_sync_log(session: Session, sync_log_id: int) -> SyncLogDetail:
    """One sync with its rejected rows."""
    row = session.get(SyncLog, sync_log_id)
    if row is None:
        raise SyncLogNotFound(f"sync log {sync_log_id} does not exist")
    rejects = session.scalars(
        select(SyncReject)
        .where(SyncReject.sync_log_id == sync_log_id)
        .order_by(SyncReject.id)
        .limit(REJECTS_SHOWN)
    )
    return SyncLogDetail(
        **sync_log_public(row).model_dump(),
        rejects=[SyncRejectPublic.model_validate(r) for r in rejects],
    )


def list_integration_logs(
    session: Session,
    integration_id: str,
    *,
    status_code: int | None,
    errors_only: bool,
    limit: int,
    cursor: str | None,
) -> IntegrationLogsPublic:
    """Every HTTP attempt to one 1C, newest first; ``errors_only`` keeps failed attempts."""
    if session.get(Integration, integration_id) is None:
        raise IntegrationNotFound(f"integration {integration_id!r} does not exist")
    where = []
    if errors_only:
        where.append(
            IntegrationLog.error.is_not(None)
            | IntegrationLog.status_code.is_(None)
            | (IntegrationLog.status_code >= 400)
        )
    rows, next_cursor = newest_first(
        session,
        IntegrationLog,
        limit=limit,
        cursor=cursor,
        where=where,
        integration_id=integration_id,
        status_code=status_code,
    )
    return IntegrationLogsPublic(
        data=[IntegrationLogPublic.model_validate(r) for r in rows],
        count=len(rows),
        next_cursor=next_cursor,
    )

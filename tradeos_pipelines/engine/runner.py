"""The skeleton every entity sync shares: lock, log, stage, check, one final transaction, announce.

How one entity sync runs (:func:`run_entity_sync`):

1. take the (integration, entity) advisory lock on a dedicated connection (another live sync of
   the same pair → refused, logged failed); mark a dead sync's ``running`` log ``failed``
   ("interrupted") and commit this sync's ``running`` row;
2. the entity body reads 1C page by page and COPYs each page into TEMP staging tables while
   the next page is being fetched (:func:`stage_pages`); 1C's bad rows go to ``sync_rejects``
   at once (committed, so they survive a failed sync for diagnosis);
3. engine-level checks reject more rows set-based in SQL; above ``settings.reject_ratio`` the
   sync fails before writing anything (:func:`check_reject_ratio`);
4. upserts, history, conflicts, the watermark and ``sync_logs`` success run in ONE transaction
   (:func:`commit`), marked ``SET LOCAL tradeos.syncing = 'on'`` for the products trigger;
5. only then events are published and the client's cache of the entity is invalidated.

Any failure before the commit leaves TradeOS data and the watermark untouched and says
``failed`` with the reason in ``sync_logs`` (a killed process leaves ``running``, which step 1
of the next sync turns into ``failed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import psycopg2
import psycopg2.extensions
import psycopg2.extras
import sqlalchemy.exc

from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.core.scrub import scrubber_for
from tradeos_pipelines.core.settings import Settings, get_settings
from tradeos_pipelines.core.vocabulary import RowCounts
from tradeos_pipelines.engine.announce import publish
from tradeos_pipelines.engine.connection import (
    Connection,
    resolve_database_url,
    sync_connection,
    try_lock,
    unlock,
)
from tradeos_pipelines.engine.log import FINISH_SQL, fail_log, refused_log, start_log
from tradeos_pipelines.engine.result import SyncFailed, SyncResult
from tradeos_pipelines.engine.watermark import SAVE_STATE_SQL
from tradeos_pipelines.event_bus import EventPublisher, RedisEventBus
from tradeos_pipelines.sources.common.errors import (
    CircuitOpenError,
    OneCError,
    OneCUnavailable,
)
from tradeos_pipelines.sources.common.rows import Page
from tradeos_pipelines.sources.common.values import parse_local_datetime
from tradeos_pipelines.storage.database import get_engine, session_scope, when_reachable
from tradeos_pipelines.storage.integrations import load_integration

log = logging.getLogger(__name__)

Cursor = psycopg2.extensions.cursor


class SyncAborted(RuntimeError):
    """The engine decided not to commit; the message is the reason ``sync_logs`` shows."""


@dataclass
class SyncRun:
    """One entity sync in progress: what an entity body reads and fills in."""

    integration: IntegrationConfig
    entity: str
    log_id: int
    run_id: str | None
    full: bool
    conn: Connection
    database_url: str
    publisher: EventPublisher
    settings: Settings
    counts: RowCounts = field(default_factory=RowCounts)
    started: float = field(default_factory=time.monotonic)
    sync_version: int | None = None
    onec_total: int | None = None
    # A source without modification times (OData) gives none to move the watermark to: the
    # moment its read began is the watermark instead (changes after it are read next time).
    change_mark: datetime | None = None
    # Data events, run in order once the final transaction has committed.
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # The newest 1C modified_at among rows the parser rejected (they never reach staging):
    # the watermark moves past them too, or every incremental would read them again.
    rejected_up_to: datetime | None = None

    @property
    def integration_id(self) -> str:
        return self.integration.id

    @property
    def status(self) -> str:
        return "partial" if self.counts.rejected else "success"

    def event_data(self) -> dict[str, Any]:
        return {
            "integration_id": self.integration_id,
            "entity": self.entity,
            "run_id": self.run_id,
            "sync_log_id": self.log_id,
        }

    def publish_progress(self) -> None:
        publish(
            self.publisher,
            "sync_updates",
            "sync.progress",
            {**self.event_data(), "processed": self.counts.fetched, "total": self.onec_total},
        )


EntityBody = Callable[[SyncRun], Awaitable[None]]


def run_entity_sync(
    entity: str,
    integration_id: str,
    body: EntityBody,
    *,
    full: bool,
    run_id: str | None,
    database_url: str | None,
    publisher: EventPublisher | None,
) -> SyncResult:
    """Run ``body`` as one entity sync with its log, lock, failure handling and events."""
    url = resolve_database_url(database_url)
    engine = get_engine(url)
    settings = get_settings()
    with session_scope(url) as session:
        config = load_integration(session, integration_id)
    bus = publisher if publisher is not None else RedisEventBus.from_settings()
    with sync_connection(url, integration_id, entity) as conn:
        if not try_lock(conn, integration_id, entity):
            reason = f"another {entity} sync of integration {integration_id!r} is running"
            log_id = refused_log(engine, integration_id, entity, run_id, full, reason)
            raise SyncFailed(log_id, reason)
        log_id = start_log(engine, integration_id, entity, run_id, full)
        sync = SyncRun(config, entity, log_id, run_id, full, conn, url, bus, settings)
        publish(bus, "sync_updates", "sync.started", {**sync.event_data(), "full": full})
        try:
            try:
                asyncio.run(body(sync))
            except BaseException as exc:
                # 1C may echo credentials; the exception itself is kept by Dagster, so its
                # text (and its causes') is scrubbed in place, not only the reason stored here.
                scrub = scrubber_for(config)
                scrub.scrub_exception(exc)
                reason = scrub(describe_failure(exc))
                try:
                    # After a PostgreSQL restart this waits for the server to answer again.
                    when_reachable(lambda: fail_log(engine, log_id, reason, sync.counts))
                except Exception as log_exc:
                    # The next sync marks the row failed ("interrupted"); say so in the log.
                    log.error("could not mark sync_logs %s failed: %s", log_id, log_exc)
                publish(bus, "sync_updates", "sync.failed", {**sync.event_data(), "error": reason})
                if isinstance(exc, Exception):
                    raise SyncFailed(
                        log_id,
                        reason,
                        transient=is_transient(exc),
                        retry_at=exc.retry_at if isinstance(exc, CircuitOpenError) else None,
                    ) from exc
                raise
            for announce in sync.after_commit:  # the connection is still open for their reads
                announce()
        finally:
            unlock(conn, integration_id, entity)
    result = SyncResult(
        sync_log_id=log_id,
        integration_id=integration_id,
        entity=entity,
        status=sync.status,
        duration_s=round(time.monotonic() - sync.started, 3),
        sync_version=sync.sync_version,
        onec_total=sync.onec_total,
        full=sync.full,
        **sync.counts.as_dict(),
    )
    publish(
        bus,
        "sync_updates",
        "sync.finished",
        {
            **sync.event_data(),
            "status": result.status,
            "sync_version": result.sync_version,
            "duration_s": result.duration_s,
            **sync.counts.as_dict(),
        },
    )
    return result


def is_transient(exc: BaseException) -> bool:
    """True for a failure that a later run may not meet: 1C unavailable through the whole
    retry budget, its circuit open, or the PostgreSQL connection lost. Never for an auth,
    404, validation or protocol error, nor for an aborted sync (too many rejected rows)."""
    return isinstance(exc, OneCUnavailable | CircuitOpenError) or _connection_error(exc) is not None


def _connection_error(exc: BaseException) -> BaseException | None:
    """The driver's error when ``exc`` is a lost or refused PostgreSQL connection: on the
    sync's own psycopg2 connection, or on a pooled one (SQLAlchemy wraps the driver's)."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        exc = exc.orig
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return exc
    return None


def describe_failure(exc: BaseException) -> str:
    """The reason ``sync_logs.error`` shows: what failed, in words an operator can act on."""
    lost = _connection_error(exc)
    if lost is not None:
        return f"PostgreSQL connection lost or refused: {str(lost).strip() or type(lost).__name__}"
    # Not an error but a stop: Ctrl-C, a cancelled task, or the run terminated from the
    # Dagster UI (Dagster's interrupt is a BaseException the engine cannot name).
    if not isinstance(exc, Exception):
        return "interrupted: the sync was cancelled before it committed"
    if isinstance(exc, SyncAborted):
        return str(exc)
    if isinstance(exc, OneCError):
        return f"1C: {exc}"
    return f"{type(exc).__name__}: {exc}"


async def stage_pages(
    sync: SyncRun, pages: AsyncIterator[Page[Any]], stage: Callable[[Page[Any]], None]
) -> None:
    """Stage every page while the next one is read: COPY runs in a thread, 1C reading in the loop.

    At most two pages are in memory at once, whatever the catalogue's size.
    """
    pending: asyncio.Future[None] | None = None
    try:
        async for page in pages:
            if pending is not None:
                await pending
            if sync.onec_total is None and page.total is not None:
                sync.onec_total = page.total
            pending = asyncio.ensure_future(asyncio.to_thread(_stage_page, sync, page, stage))
        if pending is not None:
            await pending
    finally:
        # Never let the connection close under a COPY still running in the worker thread.
        if pending is not None and not pending.done():
            await asyncio.wait({pending})


def _stage_page(sync: SyncRun, page: Page[Any], stage: Callable[[Page[Any]], None]) -> None:
    stage(page)
    if page.rejected:
        write_rejects(
            sync.conn,
            sync.log_id,
            ((row.onec_id, row.reason, row.payload) for row in page.rejected),
        )
    for row in page.rejected:
        moment = _modified_at(row.payload, sync.integration.timezone)
        if moment is not None and (sync.rejected_up_to is None or moment > sync.rejected_up_to):
            sync.rejected_up_to = moment
    sync.counts.fetched += len(page.items) + len(page.rejected)
    sync.counts.rejected += len(page.rejected)
    sync.publish_progress()


def _modified_at(payload: Any, timezone: str) -> datetime | None:
    """1C's ``modified_at`` of a rejected row, if it has a readable one."""
    if not isinstance(payload, dict):
        return None
    try:
        return parse_local_datetime(payload.get("modified_at"), ZoneInfo(timezone))
    except ValueError:
        return None


def write_rejects(
    conn: Connection, log_id: int, rows: Iterable[tuple[str | None, str, Any]]
) -> None:
    """Insert (onec_id, reason, payload) rows into ``sync_rejects`` (committed at once)."""
    values = [
        (log_id, onec_id, reason, orjson.dumps(payload, default=str).decode())
        for onec_id, reason, payload in rows
    ]
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO sync_rejects (sync_log_id, onec_id, reason, payload) VALUES %s",
            values,
            template="(%s, %s, %s, %s::jsonb)",
        )


def check_reject_ratio(sync: SyncRun) -> None:
    """Fail the sync, before anything is written, when too many rows were rejected.

    Only a read of at least ``settings.reject_min_rows`` rows is judged: in a smaller one (an
    incremental read of the few rows 1C changed) a bad row is set aside in ``sync_rejects``
    and the rest commits, so one poison row never stalls an integration.
    """
    counts, limit = sync.counts, sync.settings.reject_ratio
    if counts.fetched < sync.settings.reject_min_rows:
        return
    if counts.fetched and counts.rejected / counts.fetched > limit:
        raise SyncAborted(
            f"{counts.rejected} of {counts.fetched} rows rejected "
            f"({100 * counts.rejected / counts.fetched:.1f}%), above the limit of "
            f"{100 * limit:.1f}% (TRADEOS_REJECT_RATIO); nothing was written, the rejected rows "
            f"are in sync_rejects with sync_log_id {sync.log_id}"
        )


def commit(sync: SyncRun, apply: Callable[[Cursor], None]) -> None:
    """Run ``apply`` and the ``sync_logs`` success in one transaction with a new sync version."""
    conn = sync.conn
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL tradeos.syncing = 'on'")
            cur.execute("SELECT nextval('sync_version_seq')")
            sync.sync_version = int(cur.fetchone()[0])
            apply(cur)
            cur.execute(
                FINISH_SQL,
                {
                    "id": sync.log_id,
                    "status": sync.status,
                    "sync_version": sync.sync_version,
                    "error": None,
                    "full": sync.full,
                    **sync.counts.as_dict(),
                },
            )
        conn.commit()
    except BaseException:
        if not conn.closed:
            # A connection that is already gone was rolled back by the server.
            with contextlib.suppress(psycopg2.Error):
                conn.rollback()
        raise
    finally:
        if not conn.closed:
            conn.autocommit = True


def save_state(cur: Cursor, sync: SyncRun, watermark: Any) -> None:
    """Move the watermark (inside the final transaction, with the data it covers).

    A protocol without change times (OData) gives the moment its read began. The watermark
    also moves past the rows the parser rejected: they are in ``sync_rejects``, and a good
    version of one comes with a newer ``modified_at`` anyway.
    """
    if watermark is None:
        watermark = sync.change_mark
    if sync.rejected_up_to is not None and (watermark is None or sync.rejected_up_to > watermark):
        watermark = sync.rejected_up_to
    cur.execute(
        SAVE_STATE_SQL,
        {
            "integration": sync.integration_id,
            "entity": sync.entity,
            "watermark": watermark,
            "sync_version": sync.sync_version,
            "full": sync.full,
            "onec_total": sync.onec_total,
        },
    )

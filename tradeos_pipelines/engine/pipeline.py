"""The read-then-commit sequence every 1C → TradeOS entity sync follows.

Pages stream from 1C into the entity's TEMP staging table; one SQL statement types them and
sets bad rows aside as rejects; above the reject ratio (in a read large enough to judge)
nothing is written; otherwise the entity's writes, watermark, log and the resolution of
earlier rejects its good rows supersede commit in one transaction, events go out after it, and the
client's cache for the entity is dropped. Each entity supplies only what differs.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tradeos_pipelines.engine.rejects import resolve_rejects
from tradeos_pipelines.engine.rows import move_rejects
from tradeos_pipelines.engine.runner import Cursor, SyncRun, check_reject_ratio, commit, stage_pages
from tradeos_pipelines.engine.source import OneCSource, invalidate_cache, onec_client
from tradeos_pipelines.sources.common.rows import Page


@dataclass(frozen=True)
class Staging:
    """How one entity's pages are staged, typed and rejected."""

    raw_table: str
    typed_sql: str
    typed_table: str  # where the typed rows (and their rejects) are
    reject_id: str  # SQL expression naming a rejected row's 1C id
    reject_payload: str  # SQL expression of what 1C sent for a rejected row
    extra_tables: tuple[str, ...] = field(default=())  # more TEMP tables the entity needs


async def read_and_commit(
    sync: SyncRun,
    staging: Staging,
    *,
    read: Callable[[OneCSource, datetime | None, int], AsyncIterator[Page[Any]]],
    since: datetime | None,
    stage: Callable[[SyncRun, Page[Any], Iterator[int]], None],
    apply: Callable[[Cursor, SyncRun], None],
    announce: Callable[[SyncRun], None],
    typed_params: dict[str, Any] | None = None,
) -> None:
    """Read what 1C changed since ``since`` and commit it as one entity sync."""
    with sync.conn.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE {staging.raw_table} (r jsonb)")
        for ddl in staging.extra_tables:
            cur.execute(ddl)
    seq = itertools.count()
    async with onec_client(sync) as client:
        pages = read(client, since, sync.integration.page_size)
        await stage_pages(sync, pages, lambda page: stage(sync, page, seq))
    with sync.conn.cursor() as cur:
        cur.execute(staging.typed_sql, typed_params)
        move_rejects(cur, sync, staging.typed_table, staging.reject_id, staging.reject_payload)
    check_reject_ratio(sync)

    def apply_and_resolve(cur: Cursor) -> None:
        apply(cur, sync)
        # A good version of a row rejected earlier closes that reject, with the data.
        resolve_rejects(cur, sync, staging.typed_table, staging.reject_id)

    commit(sync, apply_and_resolve)
    sync.after_commit.append(lambda: announce(sync))
    await invalidate_cache(sync)

"""Engine-level rejects: staged rows the checks in SQL refused, moved to ``sync_rejects``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tradeos_pipelines.engine.runner import Cursor, SyncRun


def move_rejects(
    cur: Cursor, sync: SyncRun, table: str, onec_id_sql: str, payload_sql: str
) -> None:
    """Copy the rows of ``table`` with a ``reject_reason`` into ``sync_rejects`` and count them.

    Runs in autocommit before the final transaction, so the rejects stay for diagnosis even
    when the reject ratio then fails the sync.
    """
    cur.execute(
        f"INSERT INTO sync_rejects (sync_log_id, onec_id, reason, payload) "
        f"SELECT %s, {onec_id_sql}, reject_reason, {payload_sql} FROM {table} "
        f"WHERE reject_reason IS NOT NULL",
        (sync.log_id,),
    )
    sync.counts.rejected += cur.rowcount

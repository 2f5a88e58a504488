"""Closing rejects: a later good version of a rejected row resolves its open reject.

A row 1C sent that could not be taken stays in ``sync_rejects`` (open) until 1C sends it again
in a form that commits; then, in the same transaction as the good version, its open rejects of
that integration and entity get ``resolved_at`` and the resolving sync's log id. A successful
full pass also resolves every earlier open reject it did not reject again: it read the whole
catalogue, so a row it no longer rejects was fixed or is gone from 1C (this also closes the
rejects of rows without a usable 1C id, which no later version can name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tradeos_pipelines.engine.runner import Cursor, SyncRun


def resolve_rejects(cur: Cursor, sync: SyncRun, typed_table: str, onec_id_sql: str) -> int:
    """Resolve the open rejects this sync's accepted rows (or its full pass) supersede;
    returns how many. Runs inside the sync's final transaction."""
    cur.execute(
        f"""
        UPDATE sync_rejects r SET resolved_at = now(), resolved_by_sync_log_id = %(log)s
        FROM sync_logs l
        WHERE r.sync_log_id = l.id AND l.integration_id = %(integration)s
            AND l.entity = %(entity)s AND r.resolved_at IS NULL AND r.sync_log_id <> %(log)s
            AND (
                r.onec_id IN (SELECT {onec_id_sql} FROM {typed_table}
                              WHERE reject_reason IS NULL)
                OR (%(full)s AND (r.onec_id IS NULL OR r.onec_id NOT IN (
                    SELECT onec_id FROM sync_rejects
                    WHERE sync_log_id = %(log)s AND onec_id IS NOT NULL)))
            )
        """,
        {
            "log": sync.log_id,
            "integration": sync.integration_id,
            "entity": sync.entity,
            "full": sync.full,
        },
    )
    return cur.rowcount

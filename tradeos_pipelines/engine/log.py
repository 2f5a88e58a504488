"""The ``sync_logs`` lifecycle: running (committed at once) → success | partial | failed.

``running`` is committed in its own transaction when a sync starts, so operators see it while
it works. Success is written by the sync's final transaction together with the data (see
:mod:`tradeos_pipelines.engine.runner`); failure is written here, on a fresh connection, because
the sync's own connection may be the thing that broke.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from tradeos_pipelines.core.vocabulary import ROW_COUNTERS, RowCounts

INTERRUPTED = "interrupted: the sync process ended without finishing (killed or crashed)"
# sync_logs.error is TEXT, but a reason is meant for a person: keep it readable.
MAX_REASON = 2000


def start_log(
    engine: Engine, integration_id: str, entity: str, run_id: str | None, full: bool
) -> int:
    """Mark a dead sync's leftover ``running`` rows failed, then insert this sync as running.

    The caller holds the (integration, entity) advisory lock, so no live sync owns those rows.
    """
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE sync_logs SET status = 'failed', error = :error, finished_at = now() "
                "WHERE integration_id = :integration AND entity = :entity AND status = 'running'"
            ),
            {"error": INTERRUPTED, "integration": integration_id, "entity": entity},
        )
        return int(
            conn.execute(
                text(
                    'INSERT INTO sync_logs (integration_id, entity, run_id, status, "full") '
                    "VALUES (:integration, :entity, :run_id, 'running', :full) RETURNING id"
                ),
                {"integration": integration_id, "entity": entity, "run_id": run_id, "full": full},
            ).scalar_one()
        )


def refused_log(
    engine: Engine, integration_id: str, entity: str, run_id: str | None, full: bool, reason: str
) -> int:
    """Record a sync that could not start (e.g. another one of the same entity is running)."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                text(
                    'INSERT INTO sync_logs (integration_id, entity, run_id, status, "full", error, '
                    "finished_at) VALUES (:integration, :entity, :run_id, 'failed', :full, "
                    ":error, now()) RETURNING id"
                ),
                {
                    "integration": integration_id,
                    "entity": entity,
                    "run_id": run_id,
                    "full": full,
                    "error": reason[:MAX_REASON],
                },
            ).scalar_one()
        )


def fail_log(engine: Engine, log_id: int, reason: str, counts: RowCounts) -> None:
    """Say ``failed`` with the reason; the counts say how far it got (nothing was committed)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE sync_logs SET status = 'failed', error = :error, finished_at = now(), "
                "fetched = :fetched, rejected = :rejected WHERE id = :id AND status = 'running'"
            ),
            {
                "error": reason[:MAX_REASON],
                "fetched": counts.fetched,
                "rejected": counts.rejected,
                "id": log_id,
            },
        )


FINISH_SQL = """
UPDATE sync_logs SET status = %(status)s, finished_at = now(), sync_version = %(sync_version)s,
    "full" = %(full)s,
    {counters}, error = %(error)s
WHERE id = %(id)s
""".format(counters=", ".join(f"{c} = %({c})s" for c in ROW_COUNTERS))

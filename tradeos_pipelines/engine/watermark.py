"""Per integration and entity: where an incremental sync resumes (``sync_state``).

The watermark is the largest 1C ``modified_at`` committed so far. 1C stamps a transaction with
the time it started, so a row committed later can carry an older ``modified_at`` than rows
already read: an incremental read goes back ``settings.overlap_seconds`` before the watermark
and relies on idempotent upserts. The watermark only moves inside the transaction that commits
the data it covers (:data:`SAVE_STATE_SQL` runs in the sync's final transaction).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tradeos_pipelines.engine.connection import Connection


def read_watermark(conn: Connection, integration_id: str, entity: str) -> datetime | None:
    """The committed watermark, or None before the first successful sync."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT watermark FROM sync_state WHERE integration_id = %s AND entity = %s",
            (integration_id, entity),
        )
        row = cur.fetchone()
    return row[0] if row else None


def read_window_start(watermark: datetime | None, overlap_seconds: int) -> datetime | None:
    """``changed_since`` for an incremental read: the watermark minus the overlap window."""
    if watermark is None:
        return None
    return watermark - timedelta(seconds=overlap_seconds)


# A full pass sets the watermark to what it saw (it is authoritative, so it also repairs a
# watermark pushed into the future by a wrong 1C clock); an incremental pass only moves it on.
SAVE_STATE_SQL = """
INSERT INTO sync_state AS s (integration_id, entity, watermark, last_sync_version,
    last_success_at, last_full_sync_at, onec_total, updated_at)
VALUES (%(integration)s, %(entity)s, %(watermark)s, %(sync_version)s, now(),
    CASE WHEN %(full)s THEN now() END, CASE WHEN %(full)s THEN %(onec_total)s::bigint END, now())
ON CONFLICT (integration_id, entity) DO UPDATE SET
    watermark = CASE WHEN %(full)s THEN coalesce(EXCLUDED.watermark, s.watermark)
                     ELSE greatest(s.watermark, EXCLUDED.watermark) END,
    last_sync_version = EXCLUDED.last_sync_version,
    last_success_at = EXCLUDED.last_success_at,
    last_full_sync_at = coalesce(EXCLUDED.last_full_sync_at, s.last_full_sync_at),
    onec_total = CASE WHEN %(full)s THEN EXCLUDED.onec_total ELSE s.onec_total END,
    updated_at = now()
"""

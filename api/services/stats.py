"""Sync statistics per integration and entity over a window, in total and in time buckets.

Computed in PostgreSQL from ``sync_logs`` (``percentile_cont`` for p95); a sync counts in the
window (and bucket) where it started. Durations are of finished syncs only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi.encoders import jsonable_encoder
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.core.deps import in_session
from api.core.errors import FieldErrors
from api.core.runtime import Runtime
from tradeos_pipelines.core.vocabulary import ROW_COUNTERS

MAX_WINDOW = timedelta(days=90)
MAX_BUCKETS = 1000
_SPAN = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
# The chart leaves out "unchanged": it dwarfs the rows that moved.
SERIES_COUNTERS = tuple(c for c in ROW_COUNTERS if c != "unchanged")


def parse_span(value: str, field: str) -> timedelta:
    """``"24h"`` → 24 hours; a 422 naming ``field`` otherwise."""
    match = _SPAN.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise FieldErrors(
            [(field, f"{value!r} is not a duration like 15m, 24h or 7d")], location="query"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _window(window: str) -> timedelta:
    span = parse_span(window, "window")
    if span > MAX_WINDOW:
        raise FieldErrors([("window", "at most 90d")], location="query")
    return span


def _filters(integration_id: str | None, entity: str | None) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    if integration_id:
        clauses.append("integration_id = :integration_id")
        params["integration_id"] = integration_id
    if entity:
        clauses.append("entity = :entity")
        params["entity"] = entity
    return "".join(f" AND {c}" for c in clauses), params


_DURATION = "EXTRACT(EPOCH FROM (finished_at - started_at)) * 1000"

_STATS_SQL = f"""
SELECT integration_id, entity,
       count(*) AS runs,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'success') AS success,
       count(*) FILTER (WHERE status = 'partial') AS partial,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       avg({_DURATION}) FILTER (WHERE finished_at IS NOT NULL) AS mean_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY {_DURATION})
           FILTER (WHERE finished_at IS NOT NULL) AS p95_duration_ms,
       {", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in ROW_COUNTERS)},
       max(started_at) AS last_started_at,
       (array_agg(status ORDER BY started_at DESC, id DESC))[1] AS last_status
FROM sync_logs
WHERE started_at >= :since AND started_at < :until{{filters}}
GROUP BY integration_id, entity
ORDER BY integration_id, entity
"""


def _rate(success: int, finished: int) -> float | None:
    return round(success / finished, 4) if finished else None


def _ms(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def stats(
    session: Session, *, window: str, integration_id: str | None, entity: str | None
) -> dict[str, Any]:
    """Totals per integration and entity for syncs started within ``window``."""
    until = datetime.now(UTC)
    since = until - _window(window)
    filters, params = _filters(integration_id, entity)
    rows = session.execute(
        text(_STATS_SQL.format(filters=filters)), {"since": since, "until": until, **params}
    ).mappings()
    data = []
    for r in rows:
        finished = r["success"] + r["partial"] + r["failed"]
        data.append(
            {
                "integration_id": r["integration_id"],
                "entity": r["entity"],
                "runs": r["runs"],
                "running": r["running"],
                "success": r["success"],
                "partial": r["partial"],
                "failed": r["failed"],
                "success_rate": _rate(r["success"], finished),
                "mean_duration_ms": _ms(r["mean_duration_ms"]),
                "p95_duration_ms": _ms(r["p95_duration_ms"]),
                "rows": {c: int(r[c]) for c in ROW_COUNTERS},
                "last_started_at": r["last_started_at"],
                "last_status": r["last_status"],
            }
        )
    return {"window": window, "since": since, "until": until, "count": len(data), "data": data}


_SERIES_SQL = f"""
SELECT integration_id, entity,
       floor(EXTRACT(EPOCH FROM started_at) / :bucket)::bigint * :bucket AS t,
       count(*) AS runs,
       count(*) FILTER (WHERE status = 'success') AS success,
       count(*) FILTER (WHERE status = 'partial') AS partial,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       avg({_DURATION}) FILTER (WHERE finished_at IS NOT NULL) AS mean_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY {_DURATION})
           FILTER (WHERE finished_at IS NOT NULL) AS p95_duration_ms,
       {", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in SERIES_COUNTERS)}
FROM sync_logs
WHERE started_at >= :since AND started_at < :until{{filters}}
GROUP BY integration_id, entity, t
ORDER BY integration_id, entity, t
"""

_COUNT_FIELDS = ("runs", "success", "partial", "failed", *SERIES_COUNTERS)
_DURATION_FIELDS = ("mean_duration_ms", "p95_duration_ms")


def series(
    session: Session,
    *,
    window: str,
    bucket: str,
    integration_id: str | None,
    entity: str | None,
) -> dict[str, Any]:
    """Column-oriented time series (bucket starts in ``t``, unix seconds) for charts."""
    span = _window(window)
    step = int(parse_span(bucket, "bucket").total_seconds())
    if step < 60:
        raise FieldErrors([("bucket", "at least 1m")], location="query")
    until = datetime.now(UTC)
    since = until - span
    # A window that would need more than MAX_BUCKETS points is drawn with wider buckets
    # (whole minutes), as chart tools do; ``bucket`` in the answer says which were used.
    while True:
        first = int(since.timestamp()) // step * step
        last = int(until.timestamp()) // step * step
        count = (last - first) // step + 1
        if count <= MAX_BUCKETS:
            break
        # span / step + 2 buckets at most (both ends partly covered), in whole minutes.
        wide_enough = math.ceil(span.total_seconds() / (MAX_BUCKETS - 2) / 60) * 60
        step = max(step + 60, wide_enough)
        bucket = f"{step // 60}m"
    t = [first + i * step for i in range(count)]
    filters, params = _filters(integration_id, entity)
    rows = session.execute(
        text(_SERIES_SQL.format(filters=filters)),
        {"since": since, "until": until, "bucket": step, **params},
    ).mappings()

    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["integration_id"], r["entity"])
        entry = by_key.get(key)
        if entry is None:
            entry = {"integration_id": key[0], "entity": key[1]}
            entry.update({f: [0] * count for f in _COUNT_FIELDS})
            entry.update({f: [None] * count for f in _DURATION_FIELDS})
            by_key[key] = entry
        i = (int(r["t"]) - first) // step
        if not 0 <= i < count:
            continue
        for f in _COUNT_FIELDS:
            entry[f][i] = int(r[f])
        for f in _DURATION_FIELDS:
            entry[f][i] = _ms(r[f])
    totals = {f: [0] * count for f in ("runs", "success", "partial", "failed")}
    for entry in by_key.values():
        for f, values in totals.items():
            for i, v in enumerate(entry[f]):
                values[i] += v
    return {
        "window": window,
        "bucket": bucket,
        "since": since,
        "until": until,
        "t": t,
        "totals": totals,
        "series": list(by_key.values()),
    }


# Dashboards poll the same figures every few seconds: computed once per key and window.
CACHE_SECONDS = 5


async def cached(runtime: Runtime, key: str, compute: Callable[[Session], dict[str, Any]]) -> Any:
    """``compute``'s JSON-ready answer, shared through Redis for :data:`CACHE_SECONDS`."""
    full_key = f"{runtime.settings.redis_namespace}:stats-cache:{key}"
    hit = await runtime.redis.get(full_key)
    if hit:
        return orjson.loads(hit)
    answer = await in_session(lambda session: jsonable_encoder(compute(session)))
    await runtime.redis.set(full_key, orjson.dumps(answer), ex=CACHE_SECONDS)
    return answer

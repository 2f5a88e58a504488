"""Prometheus metrics of the sidecar, computed from what the system already records.

Nothing in the sync path counts for Prometheus: a scrape reads

- ``sync_logs`` (syncs by status, durations, rows by kind), ``sync_state`` (last success),
  ``sync_conflicts`` (open conflicts and the oldest one's age), ``sync_requests`` (requests
  waiting for the Dagster daemon) with one aggregate query each;
- ``integration_logs`` (every HTTP attempt to 1C) *incrementally*: only rows newer than the
  last scrape's, folded into counters kept in this process, because that table grows by one
  row per 1C call. Rows younger than :data:`REQUEST_LOG_SETTLE_SECONDS` are left for the next
  scrape, so a batch still being written by a run process is never skipped;
- Redis: each integration's circuit breaker, each event stream's length and newest id;
- this process: WebSocket clients, dropped clients, where the relay is in each stream, and,
  with ``DAGSTER_HOME``, Dagster's queued and running runs.

The result is cached for ``TRADEOS_METRICS_CACHE_SECONDS`` (5 s) and concurrent scrapes share
one computation, so scraping costs a handful of read-only aggregate queries every few seconds
whatever the number of scrapers. The queries take no locks a sync waits for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.concurrency import run_in_threadpool
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from redis.exceptions import RedisError
from sqlalchemy import text

from api.core.runtime import Runtime
from api.live.manager import stream_id_key
from tradeos_pipelines.core.vocabulary import ROW_COUNTERS
from tradeos_pipelines.event_bus import CHANNELS, stream_key
from tradeos_pipelines.sources.common.breaker import circuit_state
from tradeos_pipelines.storage.database import session_scope

logger = logging.getLogger(__name__)

SYNC_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
REQUEST_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
REQUEST_LOG_SETTLE_SECONDS = 30
BREAKER_STATES = ("closed", "half_open", "open")


def _bucket_columns(expression: str, buckets: Iterable[float], prefix: str) -> str:
    return ", ".join(
        f"count(*) FILTER (WHERE {expression} <= {b}) AS {prefix}{i}" for i, b in enumerate(buckets)
    )


_SYNCS_SQL = f"""
SELECT integration_id, entity, status, count(*) AS n,
    coalesce(sum(extract(epoch FROM finished_at - started_at)), 0) AS seconds,
    {", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in ROW_COUNTERS)},
    {_bucket_columns("extract(epoch FROM finished_at - started_at)", SYNC_DURATION_BUCKETS, "b")}
FROM sync_logs GROUP BY integration_id, entity, status
"""

_LAST_SUCCESS_SQL = """
SELECT integration_id, entity, extract(epoch FROM last_success_at) FROM sync_state
WHERE last_success_at IS NOT NULL
"""

_CONFLICTS_SQL = """
SELECT integration_id, entity, count(*), extract(epoch FROM now() - min(created_at))
FROM sync_conflicts WHERE status = 'open' GROUP BY integration_id, entity
"""

_WAITING_SQL = """
SELECT integration_id, count(*) FROM sync_requests WHERE picked_at IS NULL
GROUP BY integration_id
"""

_INTEGRATIONS_SQL = "SELECT id, enabled FROM integrations ORDER BY id"

# The newest id safe to fold in: every row at or below it was written more than the settle
# time ago (a backward scan of the primary key over the last seconds' rows only).
_REQUEST_LOG_UPTO_SQL = f"""
SELECT max(id) FROM integration_logs
WHERE at < now() - interval '{REQUEST_LOG_SETTLE_SECONDS} seconds' AND id > :after
"""

_REQUEST_LOG_SQL = f"""
SELECT integration_id, coalesce(status_code::text, 'error') AS status, count(*) AS n,
    sum(duration_ms) / 1000.0 AS seconds,
    {_bucket_columns("duration_ms / 1000.0", REQUEST_DURATION_BUCKETS, "b")}
FROM integration_logs WHERE id > :after AND id <= :upto
GROUP BY integration_id, coalesce(status_code::text, 'error')
"""


@dataclass
class _Histogram:
    """Cumulative counts of one label set: total, sum and per-bucket (``le``) counts."""

    buckets: tuple[float, ...]
    count: int = 0
    total: float = 0.0
    le: list[int] = field(default_factory=list)

    def add(self, count: int, total: float, le: Iterable[int]) -> None:
        le = list(le)
        self.le = [a + b for a, b in zip(self.le, le, strict=True)] if self.le else le
        self.count += count
        self.total += total

    def prometheus_buckets(self) -> list[tuple[str, float]]:
        return [
            *((_le(b), float(n)) for b, n in zip(self.buckets, self.le, strict=True)),
            ("+Inf", float(self.count)),
        ]


def _le(bound: float) -> str:
    return str(float(bound))


class RequestLogTotals:
    """1C request counters folded in from ``integration_logs``, one scrape's new rows a time."""

    def __init__(self) -> None:
        self.after = 0
        self.histograms: dict[tuple[str, str], _Histogram] = {}

    def fold(self, session: Any) -> None:
        """Add the rows written since the last fold (and settled) to the counters."""
        newest = session.execute(text("SELECT coalesce(max(id), 0) FROM integration_logs"))
        if newest.scalar() < self.after:  # emptied (TRUNCATE … RESTART IDENTITY): start over
            self.after, self.histograms = 0, {}
        upto = session.execute(text(_REQUEST_LOG_UPTO_SQL), {"after": self.after}).scalar()
        if upto is None:
            return
        rows = session.execute(text(_REQUEST_LOG_SQL), {"after": self.after, "upto": upto})
        for row in rows.mappings():
            key = (row["integration_id"], row["status"])
            histogram = self.histograms.setdefault(key, _Histogram(REQUEST_DURATION_BUCKETS))
            histogram.add(
                row["n"],
                float(row["seconds"]),
                (row[f"b{i}"] for i in range(len(REQUEST_DURATION_BUCKETS))),
            )
        self.after = upto


@dataclass
class _DatabaseSnapshot:
    integrations: list[tuple[str, bool]]
    syncs: list[dict[str, Any]]
    last_success: list[tuple[str, str, float]]
    conflicts: list[tuple[str, str, int, float]]
    waiting: list[tuple[str, int]]


class MetricsCollector:
    """Builds the metric families and caches them for a few seconds (one per sidecar process)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.requests = RequestLogTotals()
        self._lock = asyncio.Lock()
        self._cached: tuple[float, bytes] | None = None

    async def exposition(self) -> bytes:
        """The text exposition format, from cache when it is fresh enough."""
        ttl = self.runtime.settings.metrics_cache_seconds
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < ttl:
                return self._cached[1]
            families = await self.collect()
            body = generate_latest(_Families(families))  # type: ignore[arg-type]
            self._cached = (time.monotonic(), body)
            return body

    async def collect(self) -> list[Metric]:
        """Every metric family, computed now."""
        snapshot = await run_in_threadpool(self._read_database)
        families = list(self._database_families(snapshot))
        families.extend(self._request_families())
        families.extend(await self._redis_families([i for i, _ in snapshot.integrations]))
        families.extend(self._process_families())
        families.extend(await run_in_threadpool(self._dagster_families))
        return families

    # ----- PostgreSQL ---------------------------------------------------------------------

    def _read_database(self) -> _DatabaseSnapshot:
        with session_scope() as session:
            snapshot = _DatabaseSnapshot(
                integrations=[(r[0], r[1]) for r in session.execute(text(_INTEGRATIONS_SQL))],
                syncs=[dict(r) for r in session.execute(text(_SYNCS_SQL)).mappings()],
                last_success=[tuple(r) for r in session.execute(text(_LAST_SUCCESS_SQL))],
                conflicts=[tuple(r) for r in session.execute(text(_CONFLICTS_SQL))],
                waiting=[tuple(r) for r in session.execute(text(_WAITING_SQL))],
            )
            self.requests.fold(session)
        return snapshot

    def _database_families(self, s: _DatabaseSnapshot) -> Iterator[Metric]:
        enabled = GaugeMetricFamily(
            "tradeos_integration_enabled",
            "1 when the integration is enabled",
            labels=["integration"],
        )
        for integration_id, is_enabled in s.integrations:
            enabled.add_metric([integration_id], 1.0 if is_enabled else 0.0)
        yield enabled

        syncs = CounterMetricFamily(
            "tradeos_syncs",
            "Finished entity syncs by outcome (sync_logs)",
            labels=["integration", "entity", "status"],
        )
        running = GaugeMetricFamily(
            "tradeos_syncs_running", "Entity syncs running now", labels=["integration", "entity"]
        )
        rows = CounterMetricFamily(
            "tradeos_sync_rows",
            "Rows of finished syncs by kind (fetched, created, updated, unchanged, deleted, "
            "conflicts, rejected)",
            labels=["integration", "entity", "kind"],
        )
        durations: dict[tuple[str, str], _Histogram] = {}
        row_totals: dict[tuple[str, str, str], int] = {}
        for r in s.syncs:
            pair = (r["integration_id"], r["entity"])
            if r["status"] == "running":
                running.add_metric(list(pair), float(r["n"]))
                continue
            syncs.add_metric([*pair, r["status"]], float(r["n"]))
            histogram = durations.setdefault(pair, _Histogram(SYNC_DURATION_BUCKETS))
            histogram.add(
                r["n"],
                float(r["seconds"]),
                (r[f"b{i}"] for i in range(len(SYNC_DURATION_BUCKETS))),
            )
            for kind in ROW_COUNTERS:
                row_totals[(*pair, kind)] = row_totals.get((*pair, kind), 0) + int(r[kind])
        for labels, value in sorted(row_totals.items()):
            rows.add_metric(list(labels), float(value))
        duration = HistogramMetricFamily(
            "tradeos_sync_duration_seconds",
            "Duration of finished entity syncs",
            labels=["integration", "entity"],
        )
        for pair, histogram in sorted(durations.items()):
            duration.add_metric(list(pair), histogram.prometheus_buckets(), histogram.total)
        yield from (syncs, running, rows, duration)

        last = GaugeMetricFamily(
            "tradeos_last_success_timestamp_seconds",
            "When the entity last synced successfully (Unix time)",
            labels=["integration", "entity"],
        )
        for integration_id, entity, at in s.last_success:
            last.add_metric([integration_id, entity], float(at))
        yield last

        conflicts = GaugeMetricFamily(
            "tradeos_conflicts_open",
            "Conflicts waiting for a person",
            labels=["integration", "entity"],
        )
        oldest = GaugeMetricFamily(
            "tradeos_conflicts_oldest_open_age_seconds",
            "How long the oldest open conflict has waited",
            labels=["integration", "entity"],
        )
        for integration_id, entity, count, age in s.conflicts:
            conflicts.add_metric([integration_id, entity], float(count))
            oldest.add_metric([integration_id, entity], float(age))
        yield from (conflicts, oldest)

        waiting = GaugeMetricFamily(
            "tradeos_sync_requests_waiting",
            "Sync requests (webhooks, 'sync now' while Dagster was down) not yet turned into runs",
            labels=["integration"],
        )
        for integration_id, count in s.waiting:
            waiting.add_metric([integration_id], float(count))
        yield waiting

    def _request_families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "tradeos_onec_requests",
            "HTTP attempts to 1C by answer status ('error': no answer)",
            labels=["integration", "status"],
        )
        latency = HistogramMetricFamily(
            "tradeos_onec_request_duration_seconds",
            "Duration of HTTP attempts to 1C",
            labels=["integration", "status"],
        )
        for (integration_id, status), h in sorted(self.requests.histograms.items()):
            requests.add_metric([integration_id, status], float(h.count))
            latency.add_metric([integration_id, status], h.prometheus_buckets(), h.total)
        yield from (requests, latency)

    # ----- Redis --------------------------------------------------------------------------

    async def _redis_families(self, integration_ids: list[str]) -> list[Metric]:
        redis, namespace = self.runtime.redis, self.runtime.settings.redis_namespace
        breaker = GaugeMetricFamily(
            "tradeos_breaker_state",
            "1 for the circuit breaker's current state (closed, half_open, open)",
            labels=["integration", "state"],
        )
        failures = GaugeMetricFamily(
            "tradeos_breaker_failures",
            "Consecutive 1C failures the breaker has counted",
            labels=["integration"],
        )
        length = GaugeMetricFamily(
            "tradeos_event_stream_length", "Events retained in the stream", labels=["channel"]
        )
        lag = GaugeMetricFamily(
            "tradeos_event_stream_lag_seconds",
            "Newest event in the stream minus the newest this sidecar relayed (0: caught up)",
            labels=["channel"],
        )
        up = GaugeMetricFamily("tradeos_redis_up", "1 when this scrape could read Redis")
        try:
            for integration_id in integration_ids:
                state = await circuit_state(redis, integration_id, namespace=namespace)
                for name in BREAKER_STATES:
                    breaker.add_metric(
                        [integration_id, name], 1.0 if state["state"] == name else 0.0
                    )
                failures.add_metric([integration_id], float(state["failures"]))
            positions = self.runtime.relay.positions
            for channel in CHANNELS:
                key = stream_key(channel, namespace)
                length.add_metric([channel], float(await redis.xlen(key)))
                newest = await redis.xrevrange(key, count=1)
                if not newest:
                    lag.add_metric([channel], 0.0)
                    continue
                newest_ms = stream_id_key(_text(newest[0][0]))[0]
                relayed = positions.get(key) if positions else None
                relayed_ms = stream_id_key(relayed)[0] if relayed else 0
                lag.add_metric([channel], max(0.0, (newest_ms - relayed_ms) / 1000))
            up.add_metric([], 1.0)
        except RedisError as exc:
            logger.warning("metrics: cannot read Redis (%s)", type(exc).__name__)
            up.add_metric([], 0.0)
            return [up]
        return [breaker, failures, length, lag, up]

    # ----- this process -------------------------------------------------------------------

    def _process_families(self) -> Iterator[Metric]:
        stats = self.runtime.manager.stats()
        yield GaugeMetricFamily(
            "tradeos_websocket_clients",
            "WebSocket clients connected now",
            value=stats["connections"],
        )
        yield CounterMetricFamily(
            "tradeos_websocket_connections",
            "WebSocket connections accepted since the sidecar started",
            value=stats["connections_total"],
        )
        yield CounterMetricFamily(
            "tradeos_websocket_dropped_clients",
            "Slow WebSocket clients closed (1013) since the sidecar started",
            value=stats["dropped_clients"],
        )
        yield CounterMetricFamily(
            "tradeos_events_relayed",
            "Events read from Redis and fanned out since the sidecar started",
            value=stats["events_relayed"],
        )

    def _dagster_families(self) -> list[Metric]:
        watcher = self.runtime.watcher
        if watcher is None:
            return []
        from dagster import DagsterRunStatus, RunsFilter

        runs = GaugeMetricFamily(
            "tradeos_dagster_runs", "Dagster runs queued or running now", labels=["status"]
        )
        try:
            for status in (DagsterRunStatus.QUEUED, DagsterRunStatus.STARTED):
                count = watcher.instance.get_runs_count(RunsFilter(statuses=[status]))
                runs.add_metric([status.value.lower()], float(count))
        except Exception as exc:  # Dagster's storage down: the other metrics still answer
            logger.warning("metrics: cannot read Dagster runs (%s)", type(exc).__name__)
            return []
        return [runs]


class _Families:
    """What ``generate_latest`` needs: something with ``collect()``."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""Sensors (running by default) of the 1C sync.

- ``integration_partitions``: keeps the dynamic partition keys equal to the ``integrations``
  table (disabled integrations keep their partition; schedules and sensors skip them).
- ``sync_requests``: turns ``sync_requests`` rows (1C webhooks, "sync now" while the webserver
  was down) into runs within seconds; a row is done only when its run ids are recorded.
- ``onec_changes``: asks each enabled integration's 1C whether anything changed since the
  committed watermark (a ``limit=1`` read) and requests runs only for what changed.
- ``sync_failure_alerts``: publishes an ``alert`` event after repeated failures of one
  integration and entity.
"""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations
# of decorated functions at definition time.

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import redis.asyncio as aioredis
from dagster import (
    AddDynamicPartitionsRequest,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    DeleteDynamicPartitionsRequest,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from dagster._core.storage.tags import PARTITION_NAME_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.core.settings import get_settings, today_in_schedule_timezone
from tradeos_pipelines.core.vocabulary import (
    ENTITIES,
    JOB_FOR_ENTITY,
    TAG_ENTITY,
    TAG_FULL,
    TAG_INTEGRATION,
    TAG_LANE,
    Entity,
    lane,
    run_tags,
)
from tradeos_pipelines.defs.jobs import sync_jobs
from tradeos_pipelines.defs.partitions import integration_partitions_def
from tradeos_pipelines.defs.resources import TradeOSResource
from tradeos_pipelines.defs.runs import partition_key_for
from tradeos_pipelines.defs.schedules import integrations_with_catalogue
from tradeos_pipelines.engine.source import connect
from tradeos_pipelines.sources.common.transport import RetryPolicy
from tradeos_pipelines.storage.integrations import list_integration_ids, to_config
from tradeos_pipelines.storage.request_log import IntegrationLogWriter
from tradeos_pipelines.storage.tables import Integration, Order, SyncRequest, SyncState

_settings = get_settings()

# Runs that have not started yet: a new request for the same lane is already covered by them.
WAITING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]
IN_FLIGHT = [*WAITING, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]

PARTITIONS_SENSOR = "integration_partitions"
REQUESTS_SENSOR = "sync_requests"
CHANGES_SENSOR = "onec_changes"

# How many waiting requests one tick takes (the rest go on the next tick, seconds later).
REQUESTS_PER_TICK = 200
# A change that was requested but did not move the watermark (the run failed) is asked again
# after this long, not on every tick: repeated failures go to the alert sensor instead.
CHANGE_RETRY_AFTER_S = 600
# Meanwhile 1C is asked only for rows changed after that request, so a change made after a
# failed run is still seen at the next tick. Allowing for 1C's clock running behind ours would
# re-request the same run once; a change it misses is asked again after CHANGE_RETRY_AFTER_S.
CHANGE_CLOCK_SKEW_S = 0
# 1C is asked about all integrations at once; one that hangs must not hold the others.
PROBE_TIMEOUT_S = 20.0


def _known_partitions(instance: DagsterInstance) -> set[str]:
    return set(instance.get_dynamic_partitions(integration_partitions_def.name))


def _lane_runs(
    instance: DagsterInstance, integration_id: str, entity: str, statuses: list[DagsterRunStatus]
) -> Sequence:
    return instance.get_runs(
        filters=RunsFilter(tags={TAG_LANE: lane(integration_id, entity)}, statuses=statuses),
        limit=20,
    )


# --- partition reconciliation -------------------------------------------------------------


@sensor(
    name=PARTITIONS_SENSOR,
    minimum_interval_seconds=max(10, _settings.request_sensor_interval_seconds),
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds a partition for each new integration and removes deleted ones.",
)
def integration_partitions_sensor(
    context: SensorEvaluationContext, tradeos: TradeOSResource
) -> SensorResult | SkipReason:
    """Reconcile the ``integrations`` dynamic partitions with the ``integrations`` table."""
    with tradeos.session() as session:
        wanted = set(list_integration_ids(session, enabled_only=False))
    existing = _known_partitions(context.instance)
    added, removed = sorted(wanted - existing), sorted(existing - wanted)
    if not added and not removed:
        return SkipReason(f"partitions already match the {len(wanted)} integrations")
    requests: list[AddDynamicPartitionsRequest | DeleteDynamicPartitionsRequest] = []
    if added:
        requests.append(integration_partitions_def.build_add_request(added))
        context.log.info("adding partitions %s", ", ".join(added))
    if removed:
        requests.append(integration_partitions_def.build_delete_request(removed))
        context.log.info("removing partitions of deleted integrations %s", ", ".join(removed))
    return SensorResult(dynamic_partitions_requests=requests)


# --- sync requests (webhooks, "sync now" while the webserver was down) -----------------------


def request_run_key(request_id: int, entity: str) -> str:
    """Run key of one entity of one request: the same on every tick, so no run starts twice."""
    return f"request:{request_id}:{entity}"


def _run_for_key(instance: DagsterInstance, run_key: str) -> str | None:
    runs = instance.get_runs(
        filters=RunsFilter(tags={RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: REQUESTS_SENSOR}),
        limit=1,
    )
    return runs[0].run_id if runs else None


def _waiting_run(
    instance: DagsterInstance, integration_id: str, entity: Entity, full: bool, day: date
) -> str | None:
    """A queued run of the same partition that will do what the request asks once it starts."""
    partition = str(partition_key_for(integration_id, entity, day))
    for run in _lane_runs(instance, integration_id, entity, WAITING):
        if run.tags.get(PARTITION_NAME_TAG) != partition:
            continue
        if not full or run.tags.get(TAG_FULL) == "true":
            return run.run_id
    return None


@sensor(
    name=REQUESTS_SENSOR,
    jobs=sync_jobs,
    minimum_interval_seconds=_settings.request_sensor_interval_seconds,
    default_status=DefaultSensorStatus.RUNNING,
    description="Turns sync_requests rows (1C webhooks, 'sync now') into runs.",
)
def sync_requests_sensor(
    context: SensorEvaluationContext, tradeos: TradeOSResource
) -> SensorResult | SkipReason:
    """Start the runs of waiting requests; record their run ids when Dagster has them.

    A row is picked (``picked_at``) on the first tick that sees it and finished (``run_ids``)
    once every entity has a run. Until then each tick asks again with the same run keys, which
    Dagster deduplicates: if the daemon stops between picking and submitting, nothing is lost
    and nothing runs twice. A burst of requests for a lane that already has a queued run joins
    that run instead of queueing another.
    """
    instance = context.instance
    known = _known_partitions(instance)
    run_requests: list[RunRequest] = []
    new_partitions: set[str] = set()
    finished = 0
    day = today_in_schedule_timezone()
    with tradeos.session() as session:
        rows = session.scalars(
            select(SyncRequest)
            .where(SyncRequest.run_ids.is_(None))
            .order_by(SyncRequest.id)
            .limit(REQUESTS_PER_TICK)
            # Locked until commit: the webhook merge in launch.py waits instead of adding an
            # entity to a row this tick has already read.
            .with_for_update()
        ).all()
        if not rows:
            return SkipReason("no waiting sync requests")
        enabled = {
            i: e
            for i, e in session.execute(
                select(Integration.id, Integration.enabled).where(
                    Integration.id.in_({r.integration_id for r in rows})
                )
            ).all()
        }
        now = datetime.now(UTC)
        for row in rows:
            if row.picked_at is None:
                row.picked_at = now
            if row.source == "webhook" and not enabled.get(row.integration_id, False):
                context.log.info(
                    "request %s: integration %s is disabled", row.id, row.integration_id
                )
                row.run_ids = []
                finished += 1
                continue
            run_ids: list[str] = []
            for entity in row.entities:
                key = request_run_key(row.id, entity)
                run_id = _run_for_key(instance, key) or _waiting_run(
                    instance, row.integration_id, entity, row.full, day
                )
                if run_id is not None:
                    run_ids.append(run_id)
                    continue
                if row.integration_id not in known:
                    new_partitions.add(row.integration_id)
                run_requests.append(
                    RunRequest(
                        job_name=JOB_FOR_ENTITY[entity],
                        run_key=key,
                        partition_key=partition_key_for(row.integration_id, entity, day),
                        tags=run_tags(
                            row.integration_id,
                            entity,
                            full=row.full,
                            source=row.source,  # type: ignore[arg-type]
                            request_id=row.id,
                        ),
                    )
                )
            if len(run_ids) == len(row.entities):
                row.run_ids = run_ids
                finished += 1
    if new_partitions:
        # Added before the runs are submitted, in the same tick.
        partition_requests = [integration_partitions_def.build_add_request(sorted(new_partitions))]
    else:
        partition_requests = []
    if not run_requests and not partition_requests:
        return SkipReason(f"{finished} request(s) already have their runs")
    return SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests)


# --- change detection ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Probe:
    """What to ask one integration's 1C."""

    config: IntegrationConfig
    watermarks: dict[Entity, datetime | None]


async def _probe(
    probe: _Probe, redis_url: str, request_log: IntegrationLogWriter
) -> dict[Entity, bool]:
    client_redis = aioredis.Redis.from_url(redis_url)
    try:
        async with connect(
            probe.config,
            redis=client_redis,
            request_log=request_log,
            retry=RetryPolicy.interactive(),  # a tick must not wait out a sync's budget
        ) as client:
            return {
                entity: await client.has_changes(entity, watermark)
                for entity, watermark in probe.watermarks.items()
            }
    finally:
        await client_redis.aclose()


async def _probe_all(
    probes: list[_Probe], redis_url: str, request_log: IntegrationLogWriter
) -> list[dict[Entity, bool] | BaseException]:
    async def one(probe: _Probe) -> dict[Entity, bool]:
        return await asyncio.wait_for(_probe(probe, redis_url, request_log), PROBE_TIMEOUT_S)

    return await asyncio.gather(*(one(p) for p in probes), return_exceptions=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {PROBE_TIMEOUT_S:.0f} s"
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _orders_waiting_days(session: Session, integration: Integration) -> list[date]:
    """Days (in the integration's time zone, as the engine exports them) with orders waiting."""
    local_day = func.date(func.timezone(integration.timezone, Order.order_date))
    return list(
        session.scalars(
            select(local_day)
            .where(Order.integration_id == integration.id, Order.status == "new")
            .group_by(local_day)
            .order_by(local_day)
        )
    )


@sensor(
    name=CHANGES_SENSOR,
    jobs=sync_jobs,
    minimum_interval_seconds=_settings.change_sensor_interval_seconds,
    default_status=DefaultSensorStatus.RUNNING,
    description="Asks each enabled 1C whether anything changed since the watermark and syncs "
    "only what changed; also exports TradeOS orders waiting for 1C.",
)
def onec_change_sensor(
    context: SensorEvaluationContext, tradeos: TradeOSResource
) -> SensorResult | SkipReason:
    """Request runs for the integrations and entities that changed.

    Cursor: ``{integration: {entity: {"watermark": iso | null, "requested_at": epoch}}}``, the
    watermark a run was last requested for. It stops the sensor from asking again for the same
    change while that run is queued or after it failed (until ``CHANGE_RETRY_AFTER_S``); in
    that time 1C is asked only for rows changed after the request, so a change made after a
    failed or partial run is picked up at the next tick without re-requesting the same run.
    """
    instance = context.instance
    cursor: dict[str, dict[str, dict[str, Any]]] = json.loads(context.cursor or "{}")
    known = _known_partitions(instance)
    now = time.time()
    skipped: list[str] = []
    probes: list[_Probe] = []
    waiting_orders: dict[str, list[date]] = {}
    # The stored watermark per lane (the probe may ask from a later moment), and the lanes
    # asked only for changes after their last request.
    stored: dict[tuple[str, Entity], str | None] = {}
    rechecks: set[tuple[str, Entity]] = set()
    with tradeos.session() as session:
        integrations = session.scalars(
            select(Integration).where(Integration.enabled.is_(True)).order_by(Integration.id)
        ).all()
        states = {
            (s.integration_id, s.entity): s.watermark
            for s in session.scalars(select(SyncState)).all()
        }
        with_catalogue = integrations_with_catalogue(session)
        for row in integrations:
            if row.id not in known:
                skipped.append(f"{row.id}: no partition yet")
                continue
            watermarks: dict[Entity, datetime | None] = {}
            for entity in ENTITIES:
                if entity == "stock" and row.id not in with_catalogue:
                    continue  # stock follows the first catalogue sync (see schedules)
                if _lane_runs(instance, row.id, entity, IN_FLIGHT):
                    continue  # that run will see the change
                watermark = states.get((row.id, entity))
                last = cursor.get(row.id, {}).get(entity)
                iso = watermark.isoformat() if watermark else None
                requested_at = float(last.get("requested_at", 0)) if last else 0.0
                if (
                    last is not None
                    and last.get("watermark") == iso
                    and now - requested_at < CHANGE_RETRY_AFTER_S
                ):
                    # Already requested for this watermark, not moved since (the run failed or
                    # left a rejected row): ask only for what changed after that request.
                    after = datetime.fromtimestamp(requested_at - CHANGE_CLOCK_SKEW_S, UTC)
                    rechecks.add((row.id, entity))
                    watermarks[entity] = after if watermark is None else max(watermark, after)
                    stored[(row.id, entity)] = iso
                    continue
                watermarks[entity] = watermark
                stored[(row.id, entity)] = iso
            if watermarks:
                probes.append(_Probe(to_config(row), watermarks))
            if "orders" in watermarks:
                waiting_orders[row.id] = _orders_waiting_days(session, row)

    answers: list[dict[Entity, bool] | BaseException] = []
    if probes:
        # Every probe is an HTTP attempt to 1C, logged in integration_logs like a sync's.
        with IntegrationLogWriter(tradeos.database_url) as request_log:
            answers = asyncio.run(_probe_all(probes, tradeos.redis_url, request_log))
    run_requests: list[RunRequest] = []
    today = today_in_schedule_timezone()
    for probe, answer in zip(probes, answers, strict=True):
        integration_id = probe.config.id
        if isinstance(answer, BaseException):
            # One 1C down must not stop the others; the next tick asks again.
            skipped.append(f"{integration_id}: 1C unreachable ({_describe(answer)})")
            continue
        for entity, changed in answer.items():
            days = {today} if changed else set()
            if entity == "orders" and (integration_id, entity) not in rechecks:
                # Orders waiting since the last request are that request's business.
                days |= set(waiting_orders.get(integration_id, []))
            if not days:
                continue
            iso = stored[(integration_id, entity)]
            for day in sorted(days):
                key = partition_key_for(integration_id, entity, day)
                run_requests.append(
                    RunRequest(
                        job_name=JOB_FOR_ENTITY[entity],
                        run_key=f"change:{lane(integration_id, entity)}:{key}:{iso}:{int(now)}",
                        partition_key=key,
                        tags=run_tags(integration_id, entity, full=False, source="change"),
                    )
                )
            cursor.setdefault(integration_id, {})[entity] = {"watermark": iso, "requested_at": now}
    # Forget integrations that were deleted, so the cursor stays small.
    enabled_ids = {row.id for row in integrations}
    cursor = {k: v for k, v in cursor.items() if k in enabled_ids}
    new_cursor = json.dumps(cursor, sort_keys=True)
    if run_requests:
        for message in skipped:
            context.log.warning(message)
        return SensorResult(run_requests=run_requests, cursor=new_cursor)
    reason = "; ".join(skipped) if skipped else "no changes in 1C since the watermarks"
    return SensorResult(skip_reason=SkipReason(reason), cursor=new_cursor)


# --- alerts --------------------------------------------------------------------------------


def failure_streak(instance: DagsterInstance, integration_id: str, entity: str) -> int:
    """How many of the lane's latest finished runs failed in a row."""
    streak = 0
    runs = instance.get_runs(
        filters=RunsFilter(
            tags={TAG_LANE: lane(integration_id, entity)},
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE],
        ),
        limit=100,
    )
    for run in runs:
        if run.status != DagsterRunStatus.FAILURE:
            break
        streak += 1
    return streak


@run_failure_sensor(
    name="sync_failure_alerts",
    monitored_jobs=sync_jobs,
    default_status=DefaultSensorStatus.RUNNING,
    description="Publishes an alert event after repeated failed runs of an integration and "
    "entity (TRADEOS_ALERT_FAILURE_STREAK in a row, then again every as many).",
)
def sync_failure_alerts(context: RunFailureSensorContext, tradeos: TradeOSResource) -> None:
    """Alert the admin app (channel ``alerts``) when one lane keeps failing."""
    run = context.dagster_run
    integration_id = run.tags.get(TAG_INTEGRATION)
    entity = run.tags.get(TAG_ENTITY)
    if not integration_id or not entity:
        return
    streak = failure_streak(context.instance, integration_id, entity)
    threshold = get_settings().alert_failure_streak
    if streak < threshold or streak % threshold:
        return
    error = (context.failure_event.message or "")[:500]
    with tradeos.event_bus() as bus:
        bus.publish(
            "alerts",
            "alert",
            {
                "integration_id": integration_id,
                "entity": entity,
                "severity": "error",
                "failures": streak,
                "run_id": run.run_id,
                "message": f"{entity} sync of {integration_id} failed {streak} times in a row",
                "error": error,
            },
        )


sync_sensors = [
    integration_partitions_sensor,
    sync_requests_sensor,
    onec_change_sensor,
    sync_failure_alerts,
]

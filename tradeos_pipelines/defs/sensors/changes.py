"""``onec_changes``: asks each enabled integration's 1C whether anything changed since the
committed watermark (a one-row read) and requests runs only for what changed."""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations
# of decorated functions at definition time.

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.core.settings import get_settings, today_in_schedule_timezone
from tradeos_pipelines.core.vocabulary import (
    ENTITIES,
    JOB_FOR_ENTITY,
    Entity,
    lane,
    run_tags,
)
from tradeos_pipelines.defs.jobs import sync_jobs
from tradeos_pipelines.defs.partitions import ORDERS_START_DATE
from tradeos_pipelines.defs.resources import TradeOSResource
from tradeos_pipelines.defs.runs import partition_key_for
from tradeos_pipelines.defs.schedules import integrations_with_catalogue
from tradeos_pipelines.defs.sensors.lanes import IN_FLIGHT, known_partitions, lane_runs
from tradeos_pipelines.engine.source import connect
from tradeos_pipelines.sources.common.transport import RetryPolicy
from tradeos_pipelines.storage.catalogue import StoredCatalogueReader
from tradeos_pipelines.storage.integrations import to_config
from tradeos_pipelines.storage.request_log import IntegrationLogWriter
from tradeos_pipelines.storage.tables import Integration, Order, SyncState

_settings = get_settings()

CHANGES_SENSOR = "onec_changes"
# A change that was requested but did not move the watermark (the run failed) is asked again
# after this long, not on every tick: repeated failures go to the alert sensor instead.
CHANGE_RETRY_AFTER_S = 600
# Meanwhile 1C is asked only for rows changed after that request, so a change made after a
# failed run is still seen at the next tick. Allowing for 1C's clock running behind ours would
# re-request the same run once; a change it misses is asked again after CHANGE_RETRY_AFTER_S.
CHANGE_CLOCK_SKEW_S = 0
# 1C is asked about all integrations at once; one that hangs must not hold the others.
PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class _Probe:
    """What to ask one integration's 1C."""

    config: IntegrationConfig
    watermarks: dict[Entity, datetime | None]


async def _probe(
    probe: _Probe, redis_url: str, database_url: str, request_log: IntegrationLogWriter
) -> dict[Entity, bool]:
    # A protocol without modification times (OData) compares 1C's goods with these.
    catalogue = StoredCatalogueReader(database_url, probe.config.id)
    client_redis = aioredis.Redis.from_url(redis_url)
    try:
        async with connect(
            probe.config,
            redis=client_redis,
            request_log=request_log,
            retry=RetryPolicy.interactive(),  # a tick must not wait out a sync's budget
        ) as client:
            return {
                entity: await client.has_changes(entity, watermark, catalogue=catalogue)
                for entity, watermark in probe.watermarks.items()
            }
    finally:
        await client_redis.aclose()


async def _probe_all(
    probes: list[_Probe], redis_url: str, database_url: str, request_log: IntegrationLogWriter
) -> list[dict[Entity, bool] | BaseException]:
    async def one(probe: _Probe) -> dict[Entity, bool]:
        return await asyncio.wait_for(
            _probe(probe, redis_url, database_url, request_log), PROBE_TIMEOUT_S
        )

    return await asyncio.gather(*(one(p) for p in probes), return_exceptions=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {PROBE_TIMEOUT_S:.0f} s"
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _local(moment: datetime) -> str:
    """A moment as the skip reason shows it: in the schedules' time zone, zone named."""
    return moment.astimezone(ZoneInfo(_settings.schedule_timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _no_changes(watermarks: dict[Entity, datetime | None]) -> str:
    """``no changes in 1C since <time> (entities)``: the earliest moment 1C was asked from."""
    asked = sorted((w, e) for e, w in watermarks.items() if w is not None)
    entities = ", ".join(watermarks)
    if not asked:
        return f"no changes in 1C ({entities})"
    return f"no changes in 1C since {_local(asked[0][0])} ({entities})"


# ----- cursor -------------------------------------------------------------------------------
# Stored as {"format": 2, "checked_at": iso, "requested": {integration: {entity: {"watermark":
# iso | null, "requested_at": iso}}}}, indented, so the Dagster UI shows it readably. The first
# format (integrations at the top, requested_at in epoch seconds) is still read.
CURSOR_FORMAT = 2


def load_cursor(text: str | None) -> dict[str, dict[str, dict[str, Any]]]:
    """The cursor as ``{integration: {entity: {"watermark": iso, "requested_at": epoch}}}``."""
    raw: dict[str, Any] = json.loads(text or "{}")
    requested = raw["requested"] if raw.get("format") == CURSOR_FORMAT else raw
    cursor: dict[str, dict[str, dict[str, Any]]] = {}
    for integration_id, entities in requested.items():
        for entity, entry in entities.items():
            at = entry.get("requested_at", 0)
            epoch = datetime.fromisoformat(at).timestamp() if isinstance(at, str) else float(at)
            cursor.setdefault(integration_id, {})[entity] = {
                "watermark": entry.get("watermark"),
                "requested_at": epoch,
            }
    return cursor


def dump_cursor(cursor: dict[str, dict[str, dict[str, Any]]], now: float) -> str:
    """The cursor as stored: ISO times with their offset, named fields."""

    def iso(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")

    requested = {
        integration_id: {
            entity: {"watermark": entry["watermark"], "requested_at": iso(entry["requested_at"])}
            for entity, entry in entities.items()
        }
        for integration_id, entities in cursor.items()
    }
    return json.dumps(
        {"format": CURSOR_FORMAT, "checked_at": iso(now), "requested": requested},
        indent=1,
        sort_keys=True,
    )


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

    Cursor (readable in the Dagster UI, see :func:`dump_cursor`): per integration and entity
    the watermark a run was last requested for and when. It stops the sensor from asking
    again for the same change while that run is queued or after it failed (until
    ``CHANGE_RETRY_AFTER_S``); in that time 1C is asked only for rows changed after the
    request, so a change made after a failed or partial run is picked up at the next tick
    without re-requesting the same run.
    """
    instance = context.instance
    cursor = load_cursor(context.cursor)
    known = known_partitions(instance)
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
                if lane_runs(instance, row.id, entity, IN_FLIGHT):
                    continue  # that run will see the change
                watermark = states.get((row.id, entity))
                last = cursor.get(row.id, {}).get(entity)
                iso = watermark.isoformat() if watermark else None
                requested_at = float(last["requested_at"]) if last else 0.0
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
            answers = asyncio.run(
                _probe_all(probes, tradeos.redis_url, tradeos.database_url, request_log)
            )
    run_requests: list[RunRequest] = []
    quiet: list[str] = []
    today = today_in_schedule_timezone()
    for probe, answer in zip(probes, answers, strict=True):
        integration_id = probe.config.id
        if isinstance(answer, BaseException):
            # One 1C down must not stop the others; the next tick asks again.
            skipped.append(f"{integration_id}: 1C unreachable ({_describe(answer)})")
            continue
        if not any(answer.values()):
            quiet.append(f"{integration_id}: {_no_changes(probe.watermarks)}")
        for entity, changed in answer.items():
            days = {today} if changed else set()
            if entity == "orders" and (integration_id, entity) not in rechecks:
                # Orders waiting since the last request are that request's business.
                days |= set(waiting_orders.get(integration_id, []))
                early = sorted(d for d in days if d < ORDERS_START_DATE)
                if early:
                    # No partition for those days: say so rather than request a run Dagster
                    # would refuse.
                    skipped.append(
                        f"{integration_id}: orders of {', '.join(map(str, early))} wait for "
                        f"export but precede the first orders partition {ORDERS_START_DATE} "
                        "(TRADEOS_ORDERS_PARTITIONS_START)"
                    )
                    days -= set(early)
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
    new_cursor = dump_cursor(cursor, now)
    if run_requests:
        for message in skipped:
            context.log.warning(message)
        return SensorResult(run_requests=run_requests, cursor=new_cursor)
    reason = "; ".join(skipped + quiet) if skipped or quiet else "no enabled integration to ask"
    # The UI shows a skip reason only as a tooltip; the tick's log shows it in full.
    context.log.info(reason)
    return SensorResult(skip_reason=SkipReason(reason), cursor=new_cursor)

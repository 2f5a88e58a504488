"""Schedules (running by default): every enabled integration, one run per partition per tick.

Crons and time zone come from settings (``TRADEOS_NOMENCLATURE_SCHEDULE_CRON``,
``TRADEOS_STOCK_ORDERS_SCHEDULE_CRON``, ``TRADEOS_SCHEDULE_TIMEZONE``). The run key is the
schedule, the partition and the tick time, so a tick the daemon retries starts nothing twice.
"""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations
# of decorated functions at definition time.

from collections.abc import Iterator
from zoneinfo import ZoneInfo

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.core.vocabulary import Entity, run_tags
from tradeos_pipelines.defs.jobs import nomenclature_job, orders_job, stock_job
from tradeos_pipelines.defs.partitions import (
    integration_partitions_def,
    orders_partition_key,
)
from tradeos_pipelines.defs.resources import TradeOSResource
from tradeos_pipelines.storage.integrations import list_integration_ids
from tradeos_pipelines.storage.tables import SyncState

_settings = get_settings()


def integrations_with_catalogue(session: Session) -> set[str]:
    """Integrations whose nomenclature synced at least once.

    Stock rows refer to products: a stock sync before the first catalogue sync would reject
    every row, so stock waits for it.
    """
    return set(
        session.scalars(
            select(SyncState.integration_id).where(
                SyncState.entity == "nomenclature", SyncState.last_success_at.is_not(None)
            )
        )
    )


def scheduled_integrations(
    context: ScheduleEvaluationContext, tradeos: TradeOSResource, entity: Entity
) -> tuple[list[str], list[str]]:
    """(integrations to run now, enabled ones waiting: for a partition or a first catalogue)."""
    with tradeos.session() as session:
        enabled = list_integration_ids(session, enabled_only=True)
        with_catalogue = integrations_with_catalogue(session) if entity == "stock" else None
    known = set(context.instance.get_dynamic_partitions(integration_partitions_def.name))
    ready = [i for i in enabled if i in known and (with_catalogue is None or i in with_catalogue)]
    return ready, [i for i in enabled if i not in ready]


def _requests(
    context: ScheduleEvaluationContext, tradeos: TradeOSResource, entity: Entity
) -> Iterator[RunRequest | SkipReason]:
    ready, waiting = scheduled_integrations(context, tradeos, entity)
    if waiting:
        # The partition sensor adds partitions within seconds and stock follows the first
        # nomenclature sync; the next tick includes them.
        context.log.info("not yet ready for %s: %s", entity, ", ".join(waiting))
    if not ready:
        yield SkipReason(
            f"no enabled integration ready for {entity} (waiting: {', '.join(waiting) or 'none'})"
        )
        return
    tick = context.scheduled_execution_time
    day = tick.astimezone(ZoneInfo(_settings.schedule_timezone)).date()
    for integration_id in ready:
        if entity == "orders":
            key: str = orders_partition_key(integration_id, day)
        else:
            key = integration_id
        yield RunRequest(
            run_key=f"{entity}:{key}:{tick.isoformat()}",
            partition_key=key,
            tags=run_tags(integration_id, entity, full=False, source="schedule"),
        )


@schedule(
    name="nomenclature_hourly",
    cron_schedule=_settings.nomenclature_schedule_cron,
    job=nomenclature_job,
    execution_timezone=_settings.schedule_timezone,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Incremental nomenclature sync for every enabled integration.",
)
def nomenclature_schedule(
    context: ScheduleEvaluationContext, tradeos: TradeOSResource
) -> Iterator[RunRequest | SkipReason]:
    """One nomenclature run per enabled integration."""
    yield from _requests(context, tradeos, "nomenclature")


@schedule(
    name="stock_every_15_minutes",
    cron_schedule=_settings.stock_orders_schedule_cron,
    job=stock_job,
    execution_timezone=_settings.schedule_timezone,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Incremental stock sync for every enabled integration.",
)
def stock_schedule(
    context: ScheduleEvaluationContext, tradeos: TradeOSResource
) -> Iterator[RunRequest | SkipReason]:
    """One stock run per enabled integration."""
    yield from _requests(context, tradeos, "stock")


@schedule(
    name="orders_every_15_minutes",
    cron_schedule=_settings.stock_orders_schedule_cron,
    job=orders_job,
    execution_timezone=_settings.schedule_timezone,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Export today's orders and read their 1C statuses, every enabled integration.",
)
def orders_schedule(
    context: ScheduleEvaluationContext, tradeos: TradeOSResource
) -> Iterator[RunRequest | SkipReason]:
    """One orders run (today's partition) per enabled integration."""
    yield from _requests(context, tradeos, "orders")


sync_schedules = [nomenclature_schedule, stock_schedule, orders_schedule]

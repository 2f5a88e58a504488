"""``sync_requests``: turns ``sync_requests`` rows (1C webhooks, "sync now" while the webserver
was down) into runs within seconds; a row is done only when its run ids are recorded."""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations
# of decorated functions at definition time.

from datetime import UTC, date, datetime

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.tags import PARTITION_NAME_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG
from sqlalchemy import select

from tradeos_pipelines.core.settings import get_settings, today_in_schedule_timezone
from tradeos_pipelines.core.vocabulary import (
    JOB_FOR_ENTITY,
    TAG_FULL,
    Entity,
    run_tags,
)
from tradeos_pipelines.defs.jobs import sync_jobs
from tradeos_pipelines.defs.partitions import integration_partitions_def
from tradeos_pipelines.defs.resources import TradeOSResource
from tradeos_pipelines.defs.runs import partition_key_for
from tradeos_pipelines.defs.sensors.lanes import WAITING, known_partitions, lane_runs
from tradeos_pipelines.storage.tables import Integration, SyncRequest

_settings = get_settings()

REQUESTS_SENSOR = "sync_requests"
# How many waiting requests one tick takes (the rest go on the next tick, seconds later).
REQUESTS_PER_TICK = 200


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
    for run in lane_runs(instance, integration_id, entity, WAITING):
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
    known = known_partitions(instance)
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

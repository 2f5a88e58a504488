"""The run queue of the sync: Dagster's queued run coordinator, and every run a project run.

Schedules, sensors and "sync now" tag their runs with the integration, entity, lane and
priority (:func:`tradeos_pipelines.core.vocabulary.run_tags`). Runs started in the Dagster UI
(Materialize on an asset page, Re-execute, a backfill) come without them, yet dagster.yaml's
queue limits key on those tags: untagged, a backfill over two integrations ran both partitions
at once and a UI run could race a scheduled one for the same watermark.

Tags must be on the run before the daemon dequeues it, so a run status sensor or a hook inside
the run is too late. Job-level tags cannot know the partition. The place that sees every run,
from any entry point, with its partition tags and asset selection already set and before it is
queued is the run coordinator's ``submit_run`` — the webserver calls it for UI launches and
re-executions, the daemon for backfills, schedules and sensors. :class:`ProjectRunCoordinator`
adds the project's tags there and then queues the run as :class:`QueuedRunCoordinator` does.

dagster.yaml names this class, so the webserver and the daemon import this module: it imports
Dagster and :mod:`tradeos_pipelines.core.vocabulary` only, never the code location.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dagster import AssetKey
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun

from tradeos_pipelines.core.vocabulary import (
    ENTITIES,
    JOB_FOR_ENTITY,
    LANE_TAG_PREFIX,
    PARTITION_TAG,
    PRIORITY,
    PRIORITY_TAG,
    TAG_ENTITY,
    TAG_FULL,
    TAG_INTEGRATION,
    TAG_LANE,
    TAG_SOURCE,
    Entity,
    RunSource,
    lane,
    lane_tag,
)

# The entity each synced asset belongs to (asset key as "prefix/name"); asset checks belong to
# their asset's entity. tests/dagster/test_coordinator.py checks this against the jobs.
ENTITY_FOR_ASSET: dict[str, Entity] = {
    "tradeos/products": "nomenclature",
    "tradeos/stock": "stock",
    "onec/order_export": "orders",
    "tradeos/order_statuses": "orders",
}
ENTITY_FOR_JOB: dict[str, Entity] = {job: entity for entity, job in JOB_FOR_ENTITY.items()}
BACKFILL_TAG = "dagster/backfill"
# The integration dimension of the orders' multi-partition key.
INTEGRATION_DIMENSION_TAG = f"{PARTITION_TAG}/integration"


def _entities_of(
    job_name: str, asset_keys: Iterable[AssetKey], check_asset_keys: Iterable[AssetKey]
) -> list[Entity]:
    found = {
        ENTITY_FOR_ASSET[key.to_user_string()]
        for key in (*asset_keys, *check_asset_keys)
        if key.to_user_string() in ENTITY_FOR_ASSET
    }
    if not found and job_name in ENTITY_FOR_JOB:
        found.add(ENTITY_FOR_JOB[job_name])
    return [entity for entity in ENTITIES if entity in found]


def _wants_full(run_config: Mapping[str, Any]) -> bool:
    """Whether the launchpad config asks any sync asset for a full pass (``full: true``)."""
    ops = run_config.get("ops") or {}
    return any(
        isinstance(op, Mapping) and (op.get("config") or {}).get("full") is True
        for op in ops.values()
    )


def project_tags(
    *,
    job_name: str,
    tags: Mapping[str, str],
    asset_keys: Iterable[AssetKey] = (),
    check_asset_keys: Iterable[AssetKey] = (),
    run_config: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The tags a run lacks to be a project run; empty when it has them or is not a sync.

    A run is placed by what it materializes (its asset and check selection, else its job) and
    by its partition tag; the integration of an orders run is its partition's integration
    dimension. A run that syncs two entities gets both lane keys, and the entity and lane
    tags only when it syncs one. A backfill's runs queue behind everything else; any other run
    without tags was started by a person in the UI and counts as "sync now".
    """
    if TAG_LANE in tags or any(key.startswith(LANE_TAG_PREFIX) for key in tags):
        return {}
    entities = _entities_of(job_name, asset_keys, check_asset_keys)
    integration_id = tags.get(INTEGRATION_DIMENSION_TAG) or tags.get(PARTITION_TAG)
    if not entities or not integration_id:
        return {}
    if "orders" in entities and INTEGRATION_DIMENSION_TAG not in tags:
        return {}  # not an orders partition key; Dagster will refuse the run anyway
    source: RunSource = "backfill" if BACKFILL_TAG in tags else "manual"
    added = {
        TAG_INTEGRATION: integration_id,
        TAG_SOURCE: tags.get(TAG_SOURCE, source),
        **{lane_tag(entity): integration_id for entity in entities},
    }
    if len(entities) == 1:
        added[TAG_ENTITY] = entities[0]
        added[TAG_LANE] = lane(integration_id, entities[0])
    if TAG_FULL not in tags:
        added[TAG_FULL] = "true" if _wants_full(run_config or {}) else "false"
    if PRIORITY_TAG not in tags:
        added[PRIORITY_TAG] = str(PRIORITY[source])
    return added


def project_tags_of_run(run: DagsterRun) -> dict[str, str]:
    """:func:`project_tags` for a run as Dagster stored it."""
    return project_tags(
        job_name=run.job_name,
        tags=run.tags,
        asset_keys=run.asset_selection or (),
        check_asset_keys=[check.asset_key for check in run.asset_check_selection or ()],
        run_config=run.run_config,
    )


class ProjectRunCoordinator(QueuedRunCoordinator):
    """:class:`QueuedRunCoordinator` that gives every sync run the project's tags first.

    Configured in dagster.yaml with the same options as the queued run coordinator.
    """

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        """Tag the run (stored before it is queued), then queue it."""
        run = context.dagster_run
        added = project_tags_of_run(run)
        if added:
            self._instance.add_run_tags(run.run_id, added)
            run = run.with_tags({**run.tags, **added})
            context = SubmitRunContext(run, context.workspace)
        return super().submit_run(context)

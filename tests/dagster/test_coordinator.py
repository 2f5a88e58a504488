"""Every run is a project run: runs started in the Dagster UI get the integration, entity,
lane and priority tags before they are queued, so dagster.yaml's queue limits apply to them.

The rules are checked on :func:`project_tags`; the coordinator itself on the session's real
instance (PostgreSQL storage, the project's dagster.yaml); the daemon in ``test_e2e.py``.
"""

from __future__ import annotations

from dagster import AssetCheckKey, AssetKey, DagsterRunStatus, RunsFilter, in_process_executor
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.run_coordinator import SubmitRunContext
from dagster._core.test_utils import create_run_for_test

from tradeos_pipelines.core.vocabulary import JOB_FOR_ENTITY, run_tags
from tradeos_pipelines.definitions import defs
from tradeos_pipelines.defs.assets import sync_assets
from tradeos_pipelines.defs.coordinator import (
    ENTITY_FOR_ASSET,
    ProjectRunCoordinator,
    project_tags,
)
from tradeos_pipelines.defs.jobs import sync_jobs

ASSET_JOB = "__ASSET_JOB"
PRODUCTS = AssetKey(["tradeos", "products"])
STOCK = AssetKey(["tradeos", "stock"])
STATUSES = AssetKey(["tradeos", "order_statuses"])
EXPORT = AssetKey(["onec", "order_export"])


def test_a_ui_materialize_of_one_partition_becomes_a_manual_sync_of_its_lane() -> None:
    tags = project_tags(
        job_name=ASSET_JOB, tags={"dagster/partition": "main-1c"}, asset_keys=[PRODUCTS]
    )
    assert tags == {
        "tradeos/integration": "main-1c",
        "tradeos/entity": "nomenclature",
        "tradeos/lane": "main-1c:nomenclature",
        "tradeos/lane/nomenclature": "main-1c",
        "tradeos/full": "false",
        "tradeos/source": "manual",
        "dagster/priority": "10",
    }
    # The same tags a "sync now" of that partition gets, so both wait in one lane.
    manual = run_tags("main-1c", "nomenclature", full=False, source="manual")
    assert {k: manual[k] for k in tags} == tags


def test_an_orders_run_takes_its_integration_from_the_partition_dimension() -> None:
    tags = project_tags(
        job_name=ASSET_JOB,
        tags={
            "dagster/partition": "2026-12-01|main-1c",
            "dagster/partition/date": "2026-12-01",
            "dagster/partition/integration": "main-1c",
        },
        asset_keys=[EXPORT, STATUSES],
    )
    assert tags["tradeos/lane"] == "main-1c:orders"
    assert tags["tradeos/lane/orders"] == "main-1c"
    assert tags["tradeos/integration"] == "main-1c"


def test_a_run_of_two_entities_waits_for_both_lanes() -> None:
    tags = project_tags(
        job_name=ASSET_JOB,
        tags={"dagster/partition": "main-1c"},
        asset_keys=[STOCK, PRODUCTS],
        run_config={"ops": {"tradeos__stock": {"config": {"full": True}}}},
    )
    assert tags == {
        "tradeos/integration": "main-1c",
        "tradeos/lane/nomenclature": "main-1c",
        "tradeos/lane/stock": "main-1c",
        "tradeos/full": "true",
        "tradeos/source": "manual",
        "dagster/priority": "10",
    }


def test_backfill_runs_queue_behind_everything_and_checks_follow_their_asset() -> None:
    backfill = project_tags(
        job_name=ASSET_JOB,
        tags={"dagster/partition": "b-1c", "dagster/backfill": "abcdef"},
        asset_keys=[STOCK],
    )
    assert (backfill["tradeos/source"], backfill["dagster/priority"]) == ("backfill", "-1")
    checks_only = project_tags(
        job_name=ASSET_JOB,
        tags={"dagster/partition": "b-1c"},
        check_asset_keys=[AssetCheckKey(PRODUCTS, "product_count_matches_onec_total").asset_key],
    )
    assert checks_only["tradeos/lane"] == "b-1c:nomenclature"


def test_a_reexecuted_sync_job_run_and_project_runs_keep_their_tags() -> None:
    # Re-execute from the UI keeps the job; a run of a named job is placed by that job.
    assert project_tags(job_name="stock_sync", tags={"dagster/partition": "c-1c"})[
        "tradeos/lane"
    ] == ("c-1c:stock")
    scheduled = {
        **run_tags("c-1c", "stock", full=False, source="schedule"),
        "dagster/partition": "c-1c",
    }
    assert project_tags(job_name="stock_sync", tags=scheduled) == {}
    # Not a sync (no partition, or a job of another location): left alone.
    assert project_tags(job_name=ASSET_JOB, tags={}, asset_keys=[PRODUCTS]) == {}
    assert project_tags(job_name="noop_job", tags={"dagster/partition": "x"}) == {}


def test_every_synced_asset_belongs_to_the_entity_of_its_job() -> None:
    assert sorted(ENTITY_FOR_ASSET) == sorted(a.key.to_user_string() for a in sync_assets)
    entity_of_job = {job: entity for entity, job in JOB_FOR_ENTITY.items()}
    for job in sync_jobs:
        keys = job.selection.resolve(defs.resolve_asset_graph())
        assert {ENTITY_FOR_ASSET[k.to_user_string()] for k in keys} == {entity_of_job[job.name]}


def test_every_run_executes_in_process_including_the_ui_asset_job() -> None:
    assert defs.resolve_implicit_global_asset_job_def().executor_def is in_process_executor
    for job in sync_jobs:
        assert defs.resolve_job_def(job.name).executor_def is in_process_executor


def test_the_instance_tags_a_ui_run_before_queuing_it(instance) -> None:
    coordinator = instance.run_coordinator
    assert isinstance(coordinator, ProjectRunCoordinator)
    run = create_run_for_test(
        instance,
        job_name=ASSET_JOB,
        status=DagsterRunStatus.NOT_STARTED,
        asset_selection=frozenset({PRODUCTS}),
        tags={"dagster/partition": "main-1c"},
        # Queued runs need to know their code location (the daemon launches them there).
        remote_job_origin=RemoteJobOrigin(
            RemoteRepositoryOrigin(
                RegisteredCodeLocationOrigin("tradeos_pipelines"), "__repository__"
            ),
            ASSET_JOB,
        ),
    )

    coordinator.submit_run(SubmitRunContext(run, workspace=None))

    stored = instance.get_run_by_id(run.run_id)
    assert stored.status == DagsterRunStatus.QUEUED
    assert dict(stored.tags) == {
        "dagster/partition": "main-1c",
        "dagster/code_location": "tradeos_pipelines",
        "tradeos/integration": "main-1c",
        "tradeos/entity": "nomenclature",
        "tradeos/lane": "main-1c:nomenclature",
        "tradeos/lane/nomenclature": "main-1c",
        "tradeos/full": "false",
        "tradeos/source": "manual",
        "dagster/priority": "10",
    }
    # The daemon reads queued runs by tag: the lane is indexed, not only in the run body.
    in_lane = instance.get_run_ids(
        filters=RunsFilter(tags={"tradeos/lane/nomenclature": "main-1c"})
    )
    assert in_lane == [run.run_id]


def test_scheduled_runs_leave_run_slots_for_a_person(instance) -> None:
    """dagster.yaml caps scheduled runs at 3 of the 6 slots: with three running, a fourth
    scheduled run waits while a "sync now", a webhook or a change-sensor run may start (the
    daemon decides with Dagster's own counter, used here on the instance's real limits)."""
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    def run(integration: str, source: str):
        tags = run_tags(integration, "nomenclature", full=False, source=source)
        return create_run_for_test(instance, job_name="nomenclature_sync", tags=tags)

    config = instance.run_coordinator.get_run_queue_config()
    assert config.max_concurrent_runs == 6
    running = [run(f"shop-{n}", "schedule") for n in range(3)]
    counter = TagConcurrencyLimitsCounter(list(config.tag_concurrency_limits), running)

    assert counter.is_blocked(run("shop-3", "schedule")) is True
    for source in ("manual", "webhook", "change"):
        assert counter.is_blocked(run("shop-4", source)) is False, source
    # Below the cap a scheduled run starts as before.
    two = TagConcurrencyLimitsCounter(list(config.tag_concurrency_limits), running[:2])
    assert two.is_blocked(run("shop-3", "schedule")) is False

"""Sensors against a real instance, database and (for change detection) the 1C emulator."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from dagster import (
    DagsterRunStatus,
    SensorResult,
    SkipReason,
    build_sensor_context,
)
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG
from dagster._core.test_utils import create_run_for_test
from sqlalchemy import select

from tradeos_pipelines.defs.sensors import (
    integration_partitions_sensor,
    onec_change_sensor,
    request_run_key,
    sync_requests_sensor,
)
from tradeos_pipelines.devstack.embedded import find_free_port
from tradeos_pipelines.launch import request_sync
from tradeos_pipelines.storage.tables import SyncRequest, SyncState

PAST_EVERYTHING = datetime(2026, 1, 1, tzinfo=UTC)  # later than every generated 1C row
SINCE_SHOWN = "2026-01-01 03:00:00 MSK"  # that moment as skip reasons show it


def context(instance, tradeos, cursor=None, name=None):
    return build_sensor_context(
        instance=instance, cursor=cursor, sensor_name=name, resources={"tradeos": tradeos}
    )


def submit(instance, request, sensor_name):
    """Create the run the daemon would create for a sensor's run request (not started yet)."""
    tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: sensor_name}
    return create_run_for_test(
        instance, job_name=request.job_name, tags=tags, status=DagsterRunStatus.NOT_STARTED
    )


# --- partitions ----------------------------------------------------------------------------


def test_partition_sensor_reconciles_with_integrations(
    instance, tradeos, partitions, make_integration
) -> None:
    make_integration("a-1c")
    make_integration("b-1c", enabled=False)  # disabled keeps its partition
    partitions("a-1c", "deleted-1c")
    result = integration_partitions_sensor(context(instance, tradeos))
    assert isinstance(result, SensorResult)
    requests = {
        type(r).__name__: list(r.partition_keys) for r in result.dynamic_partitions_requests
    }
    assert requests == {
        "AddDynamicPartitionsRequest": ["b-1c"],
        "DeleteDynamicPartitionsRequest": ["deleted-1c"],
    }
    partitions("a-1c", "b-1c")
    again = integration_partitions_sensor(context(instance, tradeos))
    assert isinstance(again, SkipReason)
    assert "match the 2 integrations" in again.skip_message


# --- sync requests -------------------------------------------------------------------------


def test_request_sensor_turns_each_request_into_runs_once(
    instance, tradeos, session, partitions, make_integration
) -> None:
    make_integration("main-1c")
    make_integration("new-1c")
    partitions("main-1c")  # new-1c has no partition yet: the sensor adds it with its runs
    hook = request_sync("main-1c", ["stock", "nomenclature"], full=False, source="webhook")
    manual = request_sync("new-1c", ["orders"], full=True, source="webhook")

    first = sync_requests_sensor(context(instance, tradeos))
    assert isinstance(first, SensorResult)
    keys = [r.run_key for r in first.run_requests]
    assert keys == [
        request_run_key(hook.request_id, "stock"),
        request_run_key(hook.request_id, "nomenclature"),
        request_run_key(manual.request_id, "orders"),
    ]
    stock, _, orders = first.run_requests
    assert (stock.job_name, stock.partition_key) == ("stock_sync", "main-1c")
    assert stock.tags["tradeos/source"] == "webhook" and stock.tags["dagster/priority"] == "5"
    assert stock.tags["tradeos/request"] == str(hook.request_id)
    assert orders.job_name == "orders_sync" and str(orders.partition_key).endswith("|new-1c")
    assert orders.tags["tradeos/full"] == "true"
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [["new-1c"]]
    rows = {r.id: r for r in session.scalars(select(SyncRequest))}
    assert all(r.picked_at is not None and r.run_ids is None for r in rows.values())

    # The daemon died before submitting: the next tick asks for the same run keys again.
    second = sync_requests_sensor(context(instance, tradeos))
    assert [r.run_key for r in second.run_requests] == keys

    # Now the runs exist: the tick records their ids and asks for nothing.
    instance.add_dynamic_partitions("integrations", ["new-1c"])
    run_ids = [submit(instance, r, "sync_requests").run_id for r in first.run_requests]
    third = sync_requests_sensor(context(instance, tradeos))
    assert isinstance(third, SkipReason)
    session.expire_all()
    assert session.get(SyncRequest, hook.request_id).run_ids == run_ids[:2]
    assert session.get(SyncRequest, manual.request_id).run_ids == run_ids[2:]
    fourth = sync_requests_sensor(context(instance, tradeos))
    assert isinstance(fourth, SkipReason) and "no waiting" in fourth.skip_message


def test_request_joins_a_queued_run_of_the_same_partition(
    instance, tradeos, session, partitions, make_integration
) -> None:
    make_integration("main-1c")
    make_integration("off-1c", enabled=False)
    partitions("main-1c", "off-1c")
    queued = create_run_for_test(
        instance,
        job_name="stock_sync",
        status=DagsterRunStatus.NOT_STARTED,
        tags={
            "tradeos/lane": "main-1c:stock",
            "tradeos/full": "false",
            "dagster/partition": "main-1c",
        },
    )
    incremental = request_sync("main-1c", ["stock"], full=False, source="webhook")
    full = request_sync("main-1c", ["stock"], full=True, source="webhook")
    disabled = request_sync("off-1c", ["stock"], full=False, source="webhook")

    result = sync_requests_sensor(context(instance, tradeos))
    # The incremental request rides on the queued run; the full one needs its own run;
    # a webhook for a disabled integration starts nothing.
    assert [r.run_key for r in result.run_requests] == [request_run_key(full.request_id, "stock")]
    session.expire_all()
    assert session.get(SyncRequest, incremental.request_id).run_ids == [queued.run_id]
    assert session.get(SyncRequest, full.request_id).run_ids is None
    assert session.get(SyncRequest, disabled.request_id).run_ids == []


# --- change detection ----------------------------------------------------------------------


def set_watermarks(session, integration_id, when):
    for entity in ("nomenclature", "stock", "orders"):
        session.merge(
            SyncState(
                integration_id=integration_id, entity=entity, watermark=when, last_success_at=when
            )
        )
    session.commit()


def test_change_sensor_requests_only_what_changed(
    instance, tradeos, session, partitions, make_integration, emulator
) -> None:
    make_integration("main-1c", base_url=emulator.base_url)
    partitions("main-1c")
    set_watermarks(session, "main-1c", PAST_EVERYTHING)

    quiet = onec_change_sensor(context(instance, tradeos, name="onec_changes"))
    assert not quiet.run_requests
    assert quiet.skip_reason.skip_message == (
        f"main-1c: no changes in 1C since {SINCE_SHOWN} (nomenclature, stock, orders)"
    )

    emulator.control.change_items(2)
    changed = onec_change_sensor(context(instance, tradeos, cursor=quiet.cursor))
    assert [(r.job_name, r.partition_key) for r in changed.run_requests] == [
        ("nomenclature_sync", "main-1c")
    ]
    request = changed.run_requests[0]
    assert request.tags["tradeos/source"] == "change"
    cursor = json.loads(changed.cursor)
    assert cursor["format"] == 2
    entry = cursor["requested"]["main-1c"]["nomenclature"]
    assert entry["watermark"] == PAST_EVERYTHING.isoformat()
    assert datetime.fromisoformat(entry["requested_at"]).tzinfo is not None

    # The same change is not requested again while its run waits in the queue …
    submit(instance, request, "onec_changes")
    emulator.control.change_stock(1)
    later = onec_change_sensor(context(instance, tradeos, cursor=changed.cursor))
    assert [(r.job_name, r.partition_key) for r in later.run_requests] == [
        ("stock_sync", "main-1c")
    ]


def test_change_sensor_sees_a_change_made_after_a_failed_run(
    instance, tradeos, session, partitions, make_integration, emulator
) -> None:
    make_integration("main-1c", base_url=emulator.base_url)
    partitions("main-1c")
    set_watermarks(session, "main-1c", PAST_EVERYTHING)
    emulator.control.change_items(2)
    first = onec_change_sensor(context(instance, tradeos, name="onec_changes"))
    assert [r.job_name for r in first.run_requests] == ["nomenclature_sync"]
    # Its run failed: the watermark did not move.
    tags = {**first.run_requests[0].tags, RUN_KEY_TAG: first.run_requests[0].run_key}
    create_run_for_test(
        instance, job_name="nomenclature_sync", tags=tags, status=DagsterRunStatus.FAILURE
    )

    # The same change is not requested again at the next tick …
    again = onec_change_sensor(context(instance, tradeos, cursor=first.cursor))
    assert again.run_requests == []
    assert again.skip_reason.skip_message.startswith("main-1c: no changes in 1C since 20")

    # … but a change made in 1C after the failed run is, at once.
    emulator.control.change_items(1)
    new_change = onec_change_sensor(context(instance, tradeos, cursor=again.cursor))
    assert [(r.job_name, r.partition_key) for r in new_change.run_requests] == [
        ("nomenclature_sync", "main-1c")
    ]
    cursor = json.loads(new_change.cursor)["requested"]["main-1c"]["nomenclature"]
    assert cursor["watermark"] == PAST_EVERYTHING.isoformat()
    first_at = json.loads(first.cursor)["requested"]["main-1c"]["nomenclature"]["requested_at"]
    assert datetime.fromisoformat(cursor["requested_at"]) > datetime.fromisoformat(first_at)
    # And it is not re-requested in a loop either.
    after = onec_change_sensor(context(instance, tradeos, cursor=new_change.cursor))
    assert after.run_requests == []


def test_change_sensor_skips_a_1c_that_is_down(
    instance, tradeos, session, partitions, make_integration, emulator
) -> None:
    dead = f"http://127.0.0.1:{find_free_port()}/trade"
    make_integration("dead-1c", base_url=dead)
    make_integration("main-1c", base_url=emulator.base_url)
    partitions("dead-1c", "main-1c")
    set_watermarks(session, "main-1c", PAST_EVERYTHING)
    emulator.control.change_items(1)

    result = onec_change_sensor(context(instance, tradeos))
    # The live integration still gets its run; the dead one is named in the log, not fatal.
    assert [r.partition_key for r in result.run_requests] == ["main-1c"]
    assert "dead-1c" not in json.loads(result.cursor)["requested"]

    only_dead = onec_change_sensor(context(instance, tradeos, cursor=result.cursor))
    assert not only_dead.run_requests
    assert "dead-1c: 1C unreachable" in only_dead.skip_reason.skip_message


def test_change_sensor_reads_a_cursor_of_the_first_format(
    instance, tradeos, session, partitions, make_integration, emulator
) -> None:
    """A cursor written before the readable format (epoch seconds, integrations at the top)
    still stops the same change from being requested twice."""
    make_integration("main-1c", base_url=emulator.base_url)
    partitions("main-1c")
    set_watermarks(session, "main-1c", PAST_EVERYTHING)
    emulator.control.change_items(2)
    # Requested "in a minute": 1C is asked only for rows changed after it, so the change above
    # is taken as that request's business; a cursor not understood would request it again.
    requested_at = time.time() + 60
    old = json.dumps(
        {
            "main-1c": {
                "nomenclature": {
                    "watermark": PAST_EVERYTHING.isoformat(),
                    "requested_at": requested_at,
                }
            }
        }
    )
    result = onec_change_sensor(context(instance, tradeos, cursor=old))
    assert result.run_requests == []
    stored = json.loads(result.cursor)["requested"]["main-1c"]["nomenclature"]
    assert datetime.fromisoformat(stored["requested_at"]).timestamp() == pytest.approx(
        requested_at, abs=0.001
    )


def test_change_sensor_sees_goods_edited_and_added_in_an_odata_1c(
    instance, tradeos, session, partitions, make_integration, odata_emulator
) -> None:
    from tests.fixtures.emulator import ODataSide
    from tradeos_pipelines.engine import sync_nomenclature

    side = ODataSide(odata_emulator)
    make_integration("odata-1c", **side.integration_fields())
    partitions("odata-1c")
    set_watermarks(session, "odata-1c", PAST_EVERYTHING)
    # TradeOS holds the catalogue as 1C has it now (the sync moves the nomenclature watermark).
    synced = sync_nomenclature("odata-1c", full=True)
    assert synced.created == side.items + side.folders
    quiet = onec_change_sensor(context(instance, tradeos, name="onec_changes"))
    assert quiet.run_requests == []
    assert quiet.skip_reason.skip_message == (
        "odata-1c: no changes in 1C since 2026-01-01 03:00:00 MSK (nomenclature, stock, orders)"
    )

    # An edit in 1C changes only the good's DataVersion: no time to ask about, yet it is seen.
    side.change_items(1)
    edited = onec_change_sensor(context(instance, tradeos, cursor=quiet.cursor))
    assert [(r.job_name, r.partition_key) for r in edited.run_requests] == [
        ("nomenclature_sync", "odata-1c")
    ]

    # Once the run has taken the edit, nothing is asked for; a good added in 1C is, at once.
    after = sync_nomenclature("odata-1c")
    assert after.updated == 1
    settled = onec_change_sensor(context(instance, tradeos, name="onec_changes"))
    assert settled.run_requests == []
    odata_emulator.control.add_items(1)
    added = onec_change_sensor(context(instance, tradeos, cursor=settled.cursor))
    assert [(r.job_name, r.partition_key) for r in added.run_requests] == [
        ("nomenclature_sync", "odata-1c")
    ]
    side.close()

"""Schedules fan out one run per enabled integration that has a partition, with run keys."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dagster import build_schedule_context

from tradeos_pipelines.definitions import defs
from tradeos_pipelines.defs.schedules import (
    nomenclature_schedule,
    orders_schedule,
    stock_schedule,
)
from tradeos_pipelines.storage.tables import SyncState

MOSCOW = ZoneInfo("Europe/Moscow")


def test_one_run_per_enabled_integration(
    instance, tradeos, session, partitions, make_integration
) -> None:
    make_integration("a-1c")
    make_integration("b-1c", enabled=False)
    make_integration("c-1c")
    make_integration("new-1c")  # no partition yet: the partition sensor adds it first
    partitions("a-1c", "b-1c", "c-1c")
    tick = datetime(2026, 11, 27, 0, 15, tzinfo=MOSCOW)
    context = build_schedule_context(
        instance=instance,
        scheduled_execution_time=tick,
        resources={"tradeos": tradeos},
        repository_def=defs.get_repository_def(),
    )

    nomenclature = nomenclature_schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in nomenclature] == ["a-1c", "c-1c"]
    assert [r.run_key for r in nomenclature] == [
        f"nomenclature:a-1c:{tick.isoformat()}",
        f"nomenclature:c-1c:{tick.isoformat()}",
    ]
    tags = nomenclature[0].tags
    assert tags["tradeos/lane"] == "a-1c:nomenclature"
    assert tags["tradeos/full"] == "false"
    assert tags["tradeos/source"] == "schedule"
    assert tags["dagster/priority"] == "0"

    # Stock waits for an integration's first catalogue sync (its rows refer to products).
    assert not stock_schedule.evaluate_tick(context).run_requests
    session.add(SyncState(integration_id="c-1c", entity="nomenclature", last_success_at=tick))
    session.commit()
    stock = stock_schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in stock] == ["c-1c"]

    orders = orders_schedule.evaluate_tick(context).run_requests
    # The tick's date in the schedule time zone (00:15 in Moscow is still the 26th in UTC).
    assert [str(r.partition_key) for r in orders] == ["2026-11-27|a-1c", "2026-11-27|c-1c"]
    assert orders[0].tags["tradeos/lane"] == "a-1c:orders"

    # The same tick again asks for the same run keys, so the daemon starts nothing twice.
    again = nomenclature_schedule.evaluate_tick(context).run_requests
    assert [r.run_key for r in again] == [r.run_key for r in nomenclature]


def test_skips_when_no_integration_is_enabled(
    instance, tradeos, partitions, make_integration
) -> None:
    make_integration("b-1c", enabled=False)
    partitions("b-1c")
    context = build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2026, 11, 27, 10, 0, tzinfo=MOSCOW),
        resources={"tradeos": tradeos},
        repository_def=defs.get_repository_def(),
    )
    data = stock_schedule.evaluate_tick(context)
    assert not data.run_requests
    assert "no enabled integration" in (data.skip_message or "")

"""Poison rows never stall an integration: set aside, the rest commits, the watermark moves,
and a later good version of the row closes its reject."""

from __future__ import annotations

import pytest

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.engine import SyncFailed, sync_nomenclature


def _open_rejects(sql) -> list[tuple[str, str]]:
    return [
        tuple(r)
        for r in sql(
            "SELECT onec_id, reason FROM sync_rejects WHERE resolved_at IS NULL ORDER BY id"
        )
    ]


def test_the_only_changed_row_being_bad_does_not_stall_the_integration(
    integration, onec, sql, bus, no_overlap
):
    sync_nomenclature(integration, publisher=bus)
    before = sql("SELECT watermark FROM sync_state WHERE entity = 'nomenclature'")[0][0]
    bad = onec.clear_name()  # a name cleared in 1C

    first = sync_nomenclature(integration, publisher=bus)

    # 1 of 1 rejected: below TRADEOS_REJECT_MIN_ROWS (20) the ratio is not judged.
    assert (first.status, first.fetched, first.rejected, first.created) == ("partial", 1, 1, 0)
    assert _open_rejects(sql) == [(bad, onec.missing_name_reason)]
    after = sql("SELECT watermark FROM sync_state WHERE entity = 'nomenclature'")[0][0]
    assert after > before

    # Nothing changed since: the bad row is not read again (the watermark moved past it; over
    # OData its DataVersion is the one it was rejected in).
    second = sync_nomenclature(integration, publisher=bus)
    assert (second.status, second.fetched, second.rejected) == ("success", 0, 0)

    # Someone fixes the row in 1C: the good version commits and closes the reject.
    onec.fix_name(bad)
    third = sync_nomenclature(integration, publisher=bus)
    new = onec.nameless_is_new
    assert (third.status, third.fetched, third.created, third.updated) == (
        "success",
        1,
        int(new),
        int(not new),
    )
    assert _open_rejects(sql) == []
    resolved = sql("SELECT resolved_by_sync_log_id FROM sync_rejects")
    assert [r[0] for r in resolved] == [third.sync_log_id]
    name = sql("SELECT name FROM products WHERE onec_id::text = :id", id=bad)[0][0]
    assert name.startswith("Исправленная строка")


@pytest.mark.http_service_only("a row without a 1C id: every OData row has its Ref_Key")
def test_a_full_pass_closes_rejects_of_rows_it_no_longer_rejects(
    integration, emulator, sql, bus, no_overlap
):
    sync_nomenclature(integration, publisher=bus)
    emulator.control.inject_bad_rows("no_id", 1)  # no 1C id: no later version can name it
    partial = sync_nomenclature(integration, publisher=bus)
    assert (partial.rejected, len(_open_rejects(sql))) == (1, 1)
    assert _open_rejects(sql)[0][0] is None

    # 1C still sends it: a full pass rejects it again and closes only the earlier reject.
    full = sync_nomenclature(integration, publisher=bus, full=True)
    assert full.rejected == 1
    rows = sql("SELECT sync_log_id, resolved_by_sync_log_id FROM sync_rejects ORDER BY id")
    assert [tuple(r) for r in rows] == [
        (partial.sync_log_id, full.sync_log_id),
        (full.sync_log_id, None),
    ]


@pytest.fixture
def min_rows_1(monkeypatch):
    monkeypatch.setenv("TRADEOS_REJECT_MIN_ROWS", "1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_read_large_enough_to_judge_still_fails_above_the_ratio(
    integration, onec, sql, bus, no_overlap, min_rows_1
):
    sync_nomenclature(integration, publisher=bus)
    onec.clear_name()
    watermark = sql("SELECT watermark FROM sync_state")[0][0]

    with pytest.raises(SyncFailed) as failed:
        sync_nomenclature(integration, publisher=bus)

    assert "1 of 1 rows rejected (100.0%)" in failed.value.reason
    assert sql("SELECT watermark FROM sync_state")[0][0] == watermark

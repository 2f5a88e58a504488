"""A sync process killed mid-pass leaves nothing half-written; the next sync cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tradeos_pipelines.engine import SyncFailed, sync_nomenclature
from tradeos_pipelines.engine.log import INTERRUPTED

CHILD = "from tradeos_pipelines.engine import sync_nomenclature; sync_nomenclature('main-1c')"


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_killed_sync_changes_nothing_and_next_sync_marks_it(integration, onec, sql, bus):
    sync_nomenclature(integration, publisher=bus)
    onec.change_items(120)
    before = sql("SELECT onec_id, price, onec_version, sync_version FROM products ORDER BY 1")
    watermark = sql("SELECT watermark FROM sync_state")[0][0]
    served = onec.catalogue_requests()
    # Pages from the second on answer slowly, so the child is surely mid-pass when killed.
    onec.slow_catalogue(3, seconds=2)

    child = subprocess.Popen([sys.executable, "-c", CHILD], env=os.environ.copy())
    try:
        _wait_for(lambda: sql("SELECT count(*) FROM sync_logs WHERE status = 'running'")[0][0])
        _wait_for(lambda: onec.catalogue_requests() >= served + 2)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    killed = sql("SELECT id, status FROM sync_logs WHERE status = 'running'")
    assert len(killed) == 1
    assert sql("SELECT onec_id, price, onec_version, sync_version FROM products ORDER BY 1") == (
        before
    )
    assert sql("SELECT watermark FROM sync_state")[0][0] == watermark

    onec.clear_faults()
    result = sync_nomenclature(integration, publisher=bus)

    assert result.status == "success" and result.updated == 120
    stale = sql("SELECT status, error, finished_at FROM sync_logs WHERE id = :id", id=killed[0].id)
    assert stale[0].status == "failed" and stale[0].error == INTERRUPTED and stale[0].finished_at


def test_concurrent_sync_of_the_same_entity_is_refused(integration, onec, sql, bus):
    sync_nomenclature(integration, publisher=bus)
    # 8 s: the child must still hold the lock after a loaded machine starts Python and the
    # parent's own 2 s lock wait runs out.
    onec.slow_catalogue(1, seconds=8)
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=os.environ.copy())
    try:
        _wait_for(lambda: sql("SELECT count(*) FROM sync_logs WHERE status = 'running'")[0][0])
        with pytest.raises(SyncFailed, match="is running"):
            sync_nomenclature(integration, publisher=bus)
        # The live sync's log was not taken for a dead one.
        [live] = sql("SELECT id FROM sync_logs WHERE status = 'running'")
    finally:
        assert child.wait(timeout=60) == 0
    assert sql("SELECT status FROM sync_logs WHERE id = :id", id=live.id)[0][0] == "success"

"""Redis stopped in the middle of a sync: the data still commits, nothing hangs.

The sync runs in its own process against a Redis server of its own (started for the test on a
free port), which the test stops while the sync reads 1C. Redis carries the circuit breaker,
the response cache and the event bus; none of them is needed to commit data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tradeos_pipelines.devstack.embedded import start_redis_server

from .conftest import wait_for

CHILD = """
import json
from tradeos_pipelines.engine import sync_nomenclature
result = sync_nomenclature('main-1c')
print(json.dumps({"status": result.status, "updated": result.updated}))
"""


def test_redis_stopped_mid_sync_the_sync_still_commits(
    integration, onec, sql, tmp_path, fault_report
):
    from tradeos_pipelines.engine import sync_nomenclature

    sync_nomenclature(integration)
    onec.change_items(120)  # three pages of 50
    redis = start_redis_server(tmp_path / "redis")
    served = onec.catalogue_requests()
    # Slow pages keep the sync mid-pass while Redis goes away.
    onec.slow_catalogue(2, seconds=1.5)
    env = {**os.environ, "TRADEOS_REDIS_URL": redis.url}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for(
            lambda: onec.catalogue_requests() >= served + 1,
            what="the sync to read its first page",
        )
        stopped_at = time.monotonic()
        redis.stop()
        # Nothing hangs: without Redis the sync ends on its own (here in ~6 s of slow pages).
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        redis.stop()

    assert child.returncode == 0, err.decode()[-3000:]
    outcome = json.loads(out.decode().strip().splitlines()[-1])
    fault_report.record(
        f"Redis stopped mid-sync ({onec.protocol})",
        rows_lost=120 - outcome["updated"],
        rows_half_written=0 if outcome["status"] == "success" else outcome["updated"],
        recovered_in_s=time.monotonic() - stopped_at,
        recovery="Redis stopped → the same sync committed (no recovery needed)",
    )
    assert outcome == {
        "status": "success",
        "updated": 120,
    }
    # Redis really went away mid-sync: the breaker stepped aside, events were dropped.
    log = err.decode()
    assert "circuit breaker of main-1c unavailable (Redis: ConnectionError)" in log
    assert "could not publish sync.finished on sync_updates" in log
    assert sql("SELECT status, updated FROM sync_logs ORDER BY id DESC LIMIT 1")[0] == (
        "success",
        120,
    )

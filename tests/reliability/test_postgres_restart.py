"""PostgreSQL restarted in the middle of a sync: nothing half-written, the failure said plainly,
the next sync commits everything once.

The machine's PostgreSQL is shared with other sessions, so the test starts a private cluster
(the dev stack's embedded PostgreSQL) on a free port and restarts that one with a fast shutdown
— what ``pg_ctl restart -m fast`` does: every backend is terminated, the server comes back on
the same port and data. The sync runs in its own process (as a Dagster run does) and is paced
by slow 1C pages so the restart falls mid-read.

What the product does (README "Reliability"): the sync's own connection dies with its backend
and its TEMP staging tables with it, so the sync cannot go on; it fails with "PostgreSQL
connection lost or refused", marked transient, and Dagster retries the run. Its ``sync_logs``
row says ``failed`` with that reason (written once PostgreSQL answers again). The pooled
connections of a long-lived process are checked before use, so the next sync just works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tradeos_pipelines.core.secrets import encrypt_json
from tradeos_pipelines.devstack.embedded import EmbeddedServer, start_postgres_server
from tradeos_pipelines.engine import sync_nomenclature
from tradeos_pipelines.storage.database import get_engine
from tradeos_pipelines.storage.migrate import upgrade_to_head
from tradeos_pipelines.storage.tables import Integration

from .conftest import wait_for

INTEGRATION = "main-1c"
CHILD = """
import json
from tradeos_pipelines.engine import SyncFailed, sync_nomenclature
try:
    result = sync_nomenclature('main-1c')
except SyncFailed as failed:
    print(json.dumps({"failed": failed.sync_log_id, "reason": failed.reason,
                      "transient": failed.transient}))
else:
    print(json.dumps({"status": result.status, "updated": result.updated}))
"""
PRODUCTS = "SELECT onec_id, name, price, onec_version, sync_version FROM products ORDER BY 1"


class PrivatePostgres:
    """A PostgreSQL cluster of this test alone, with the TradeOS schema in database ``tradeos``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server: EmbeddedServer = start_postgres_server(data_dir)
        self.port = make_url(self.server.url).port
        admin = create_engine(self.server.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE tradeos"))
        admin.dispose()
        self.url = make_url(self.server.url).set(database="tradeos").render_as_string(False)
        upgrade_to_head(self.url)

    def stop_fast(self) -> None:
        """Fast shutdown (SIGINT): every backend is terminated, clients are not waited for."""
        self.server.stop()

    def start(self) -> None:
        """Start again on the same port and data."""
        self.server = start_postgres_server(self.data_dir, port=self.port)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def private_postgres(redis_url: str) -> Iterator[PrivatePostgres]:
    # Not under pytest's tmp_path: under root the server runs as another account that must
    # traverse the parent folders, and a pytest session starting beside this one resets
    # /tmp/pytest-of-root to 0700 — a server restarted after that could not open its data.
    with tempfile.TemporaryDirectory(prefix="tradeos-pg-restart-") as folder:
        cluster = PrivatePostgres(Path(folder) / "postgres")
        try:
            yield cluster
        finally:
            get_engine(cluster.url).dispose()
            cluster.stop()


@pytest.fixture
def psql(private_postgres: PrivatePostgres) -> Callable[..., list[Any]]:
    """Run one statement on the private cluster in its own transaction; returns the rows."""

    def run(query: str, **params: Any) -> list[Any]:
        with get_engine(private_postgres.url).begin() as conn:
            result = conn.execute(text(query), params)
            return result.all() if result.returns_rows else []

    return run


@pytest.mark.parametrize(
    "down_until",
    ["restarted", "sync_noticed"],
    ids=["quick_restart", "down_while_the_sync_fails"],
)
def test_postgres_restarted_mid_sync_writes_nothing_and_the_next_sync_commits_once(
    down_until, private_postgres, psql, emulator, tmp_path, fault_report
):
    """``quick_restart``: back at once (``pg_ctl restart -m fast``); the sync finds its
    connection dead at its next write. ``down_while_the_sync_fails``: the server stays down
    until the sync has failed, so its log row waits for it to come back."""
    with Session(get_engine(private_postgres.url)) as s:
        s.add(
            Integration(
                id=INTEGRATION,
                name=INTEGRATION,
                base_url=emulator.base_url,
                auth_type="api_key",
                credentials_encrypted=encrypt_json({"api_key": "test-key"}),
                page_size=50,
                retry_budget_seconds=2,
            )
        )
        s.commit()
    first = sync_nomenclature(INTEGRATION, database_url=private_postgres.url)
    assert (first.status, first.created) == ("success", 204)  # 200 goods, 4 folders
    emulator.control.change_items(120)  # three pages of 50
    before = psql(PRODUCTS)
    state = "SELECT watermark, last_sync_version FROM sync_state WHERE entity = 'nomenclature'"
    watermark = psql(state)
    served = emulator.control.counters()["requests"]["GET /hs/api/nomenclature"]
    # Slow pages keep the sync mid-read while PostgreSQL restarts.
    emulator.control.inject_fault("slow", 2, path="nomenclature", seconds=2.0)
    env = {**os.environ, "TRADEOS_DATABASE_URL": private_postgres.url}
    child_log = tmp_path / "sync.log"
    with child_log.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=stderr
        )
    try:
        wait_for(
            lambda: (
                emulator.control.counters()["requests"]["GET /hs/api/nomenclature"] >= served + 1
            ),
            what="the sync to ask 1C for its first page",
        )
        stopped_at = time.monotonic()
        private_postgres.stop_fast()
        if down_until == "sync_noticed":
            # The sync has failed and waits to record it (or, not waiting, has ended).
            wait_for(
                lambda: (
                    "PostgreSQL unreachable" in child_log.read_text() or child.poll() is not None
                ),
                what="the sync to find PostgreSQL gone",
            )
        private_postgres.start()
        # Bounded: the sync ends on its own once its connection is found dead.
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    err = child_log.read_text()
    assert child.returncode == 0, err[-3000:]
    outcome = json.loads(out.decode().strip().splitlines()[-1])
    # Failed, said plainly, and transient: Dagster retries such a run (test_run_retries.py).
    assert outcome["transient"] is True, err[-3000:]
    assert outcome["reason"].startswith("PostgreSQL connection lost or refused: "), outcome
    # Nothing half-written: the catalogue and the watermark are exactly as before the sync.
    after_fault = psql(PRODUCTS)
    assert after_fault == before
    assert psql(state) == watermark
    assert psql("SELECT count(*) FROM product_history")[0][0] == 0
    # sync_logs tells the truth about the interrupted sync, with no waiting for the next one.
    assert [tuple(r) for r in psql("SELECT id, status, error FROM sync_logs ORDER BY id")] == [
        (first.sync_log_id, "success", None),
        (outcome["failed"], "failed", outcome["reason"]),
    ]

    # The next sync (in this process, whose pooled connections died in the restart) commits
    # the 120 changes exactly once.
    emulator.control.clear_faults()
    retry = sync_nomenclature(INTEGRATION, database_url=private_postgres.url)
    fault_report.record(
        f"PostgreSQL restarted mid-sync ({down_until.replace('_', ' ')})",
        rows_lost=120 - retry.updated,
        rows_half_written=len(set(after_fault) ^ set(before)),
        recovered_in_s=time.monotonic() - stopped_at,
        recovery="server stopped → the next sync committed the 120 changes",
    )

    assert (retry.status, retry.created, retry.updated) == ("success", 0, 120)
    assert psql("SELECT count(*) FROM products")[0][0] == 200
    assert psql("SELECT count(*) FROM products WHERE sync_version = :v", v=retry.sync_version) == [
        (120,)
    ]
    assert psql("SELECT count(*), count(DISTINCT product_id) FROM product_history") == [(120, 120)]
    assert psql("SELECT count(*) FROM sync_logs WHERE status = 'running'") == [(0,)]

"""`tradeos sync --wait` end to end: the sidecar launches real Dagster runs (webserver and
daemon as subprocesses) and the CLI follows them over the WebSocket to their end."""

from __future__ import annotations

import os

import pytest

from tests.api.conftest import start_sidecar
from tests.dagster.processes import dagster_processes
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.devstack.embedded import find_free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_sync_wait_follows_dagster_runs_to_success_and_failure(
    dagster_instance, make_integration, emulator, redis_url, tradeos_process, tmp_path
):
    make_integration("main-1c", base_url=emulator.base_url)
    make_integration("down-1c", base_url=f"http://127.0.0.1:{find_free_port()}/trade")
    env = {"DAGSTER_GRPC_TIMEOUT_SECONDS": "300"}
    with dagster_processes(tmp_path / "dagster-logs", env) as dagster:
        os.environ["TRADEOS_DAGSTER_URL"] = dagster.url
        get_settings.cache_clear()
        sidecar = start_sidecar(watch_runs=True)  # its run watcher publishes run.* events
        try:
            url = {"TRADEOS_API_URL": sidecar.base_url}
            ok = tradeos_process("sync", "main-1c", "--entity", "nomenclature", "--wait", **url)
            out, err = ok.communicate(timeout=600)
            assert ok.returncode == 0, (out.decode(), err.decode())
            lines = out.decode().splitlines()
            assert lines[0].startswith("main-1c: Dagster runs started: ")
            assert lines[1] == "  nomenclature: started"
            assert lines.count("  nomenclature: started") == 1  # sync.started and run.started
            assert any(line.startswith("  nomenclature: success in ") for line in lines), lines
            assert lines[-1] == "sync of main-1c finished"

            bad = tradeos_process("sync", "down-1c", "--entity", "stock", "--wait", **url)
            out, err = bad.communicate(timeout=600)
            assert bad.returncode == 1, (out.decode(), err.decode())
            lines = out.decode().splitlines()
            assert any(line.startswith("  stock: failed: 1C: ") for line in lines), lines
            assert lines[-1] == "sync of down-1c failed: stock"
        finally:
            sidecar.stop()
            os.environ.pop("TRADEOS_DAGSTER_URL", None)
            get_settings.cache_clear()

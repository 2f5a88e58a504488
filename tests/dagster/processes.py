"""Start ``dagster-webserver`` and ``dagster-daemon`` as real subprocesses for e2e tests and bench.

The webserver is started as TradeOS starts it: ``python -m tradeos_pipelines.dagster_ui``
(dagster-webserver behind the guard), so every e2e test also proves the guard lets the
sidecar's and the UI's own requests through.

Each runs in its own process group so that stopping it also stops the run workers and code
servers it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tradeos_pipelines.core.settings import PROJECT_ROOT
from tradeos_pipelines.devstack.embedded import find_free_port

BIN = Path(sys.executable).parent


@dataclass
class DagsterProcesses:
    url: str
    webserver: subprocess.Popen[bytes]
    daemon: subprocess.Popen[bytes] | None
    log_dir: Path
    daemon_command: list[str]
    env: dict[str, str]

    def stop_daemon(self) -> None:
        """Stop the daemon (SIGTERM to its group: sensors, schedules and the queue stop)."""
        if self.daemon is not None:
            _stop(self.daemon)

    def start_daemon(self) -> None:
        """Start the daemon again, appending to its log."""
        self.daemon = _start_daemon(self.daemon_command, self.env, self.log_dir)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _start_daemon(
    command: list[str], env: dict[str, str], log_dir: Path
) -> subprocess.Popen[bytes]:
    with (log_dir / "daemon.log").open("ab") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env=env,
            start_new_session=True,
        )


@contextmanager
def dagster_processes(
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    ready_timeout: float = 180,
    workspace: Path = PROJECT_ROOT / "workspace.yaml",
    *,
    daemon: bool = True,
) -> Iterator[DagsterProcesses]:
    """Webserver on a free port and (unless ``daemon=False``) the daemon, both loading
    ``workspace``; stopped on exit."""
    env = {**os.environ, **(extra_env or {})}
    port = find_free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    web_log = (log_dir / "webserver.log").open("wb")
    webserver_cmd = [sys.executable, "-m", "tradeos_pipelines.dagster_ui"]
    webserver_cmd += ["-h", "127.0.0.1", "-p", str(port)]
    webserver = subprocess.Popen(
        [*webserver_cmd, "-w", str(workspace)],
        stdout=web_log,
        stderr=subprocess.STDOUT,
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
    )
    daemon_command = [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]
    processes = DagsterProcesses(
        f"http://127.0.0.1:{port}",
        webserver,
        _start_daemon(daemon_command, env, log_dir) if daemon else None,
        log_dir,
        daemon_command,
        env,
    )
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if webserver.poll() is not None:
                raise RuntimeError(f"dagster-webserver exited; see {log_dir / 'webserver.log'}")
            try:
                if httpx.get(f"{processes.url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"dagster-webserver not ready; see {log_dir}")
            time.sleep(0.5)
        yield processes
    finally:
        processes.stop_daemon()
        _stop(webserver)
        web_log.close()


def launch_run(
    dagster_url: str, job: str, tags: Mapping[str, str], asset_path: list[str] | None = None
) -> str:
    """Launch ``job`` through Dagster's GraphQL ``launchRun`` with ``tags`` (and, for the
    implicit ``__ASSET_JOB``, an asset selection), as the UI, a schedule tick or a script
    would; returns the run id."""
    from tradeos_pipelines.launch import LAUNCH_RUN, LOCATION_NAME, REPOSITORY_NAME

    selector: dict[str, object] = {
        "repositoryLocationName": LOCATION_NAME,
        "repositoryName": REPOSITORY_NAME,
        "jobName": job,
    }
    if asset_path is not None:
        selector["assetSelection"] = [{"path": asset_path}]
    params = {
        "selector": selector,
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
    }
    body = httpx.post(
        f"{dagster_url}/graphql",
        json={"query": LAUNCH_RUN, "variables": {"executionParams": params}},
        timeout=120,
    ).json()
    result = body["data"]["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launchRun of {job} with {dict(tags)} refused: {result}")
    return str(result["run"]["runId"])

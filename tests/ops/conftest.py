"""Operator-facing tests share the API tests' real sidecar (both servers, this session's
database and Redis namespace) and add a way to run ``tradeos`` as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.api.conftest import Sidecar, anonymous, api, sidecar, ws_connect  # noqa: F401
from tradeos_pipelines.core.settings import PROJECT_ROOT, get_settings
from tradeos_pipelines.devstack.embedded import find_free_port


@pytest.fixture
def dagster_down(monkeypatch) -> Iterator[None]:
    """No Dagster webserver at the sidecar's TRADEOS_DAGSTER_URL: "sync now" queues a request."""
    monkeypatch.setenv("TRADEOS_DAGSTER_URL", f"http://127.0.0.1:{find_free_port()}")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def tradeos_process(
    sidecar: Sidecar,  # noqa: F811 - the fixture imported above
    admin_token: str,
    tmp_path: Path,
) -> Callable[..., subprocess.Popen[bytes]]:
    """Start ``tradeos ARGS`` in its own process, pointed at the test sidecar by env."""

    def start(*args: str, **env: str) -> subprocess.Popen[bytes]:
        environment = {
            **os.environ,
            "TRADEOS_API_URL": sidecar.base_url,
            "TRADEOS_TOKEN": admin_token,
            # The CLI must not lean on the server-side settings the test session has.
            "TRADEOS_DATA_DIR": str(tmp_path / "no-data-dir"),
            **env,
        }
        return subprocess.Popen(
            [sys.executable, "-m", "tradeos_pipelines.cli", *args],
            cwd=PROJECT_ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    return start

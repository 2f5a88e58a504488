"""`tradeos dev` end to end: the stack comes up, answers, and SIGTERM leaves nothing behind."""

from __future__ import annotations

import os
import signal
import stat
import time

import httpx
import psutil
import pytest

pytestmark = pytest.mark.e2e

START_TIMEOUT = 240


def _gone_within(tree: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(tree, timeout=seconds)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_stack_starts_answers_and_stops_without_orphans(start_dev_stack) -> None:
    stack = start_dev_stack()
    stack.wait_for_output("the local stack is up", START_TIMEOUT)
    api = f"http://127.0.0.1:{stack.ports['TRADEOS_API_PORT']}"
    dagster = f"http://127.0.0.1:{stack.ports['TRADEOS_DAGSTER_PORT']}"
    emulator = f"http://127.0.0.1:{stack.ports['TRADEOS_EMULATOR_PORT']}/trade"

    health = httpx.get(f"{api}/api/v1/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["checks"]["database"]["status"] == "ok"
    assert health.json()["checks"]["redis"]["status"] == "ok"
    assert httpx.get(f"{api}/docs", timeout=10).status_code == 200
    server_info = httpx.get(f"{dagster}/server_info", timeout=10)
    assert server_info.status_code == 200
    assert "dagster_version" in server_info.json()
    onec = httpx.get(f"{emulator}/hs/api/health", headers={"X-API-Key": "demo-key"}, timeout=10)
    assert onec.json()["status"] == "ok"

    # Dev secrets were generated once into the data dir, readable by the owner only.
    for name in ("secret.key", "admin.token"):
        mode = (stack.data_dir / name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600, name
    token = (stack.data_dir / "admin.token").read_text().strip()
    assert token in stack.text()  # printed once for the developer

    # The demo integration points at the bundled emulator, its key stored encrypted.
    demo = httpx.get(
        f"{api}/api/v1/integrations/demo-1c",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert demo.status_code == 200, demo.text
    assert demo.json()["base_url"] == emulator
    assert "demo-key" not in demo.text
    assert httpx.get(f"{api}/api/v1/integrations/demo-1c", timeout=10).status_code == 401

    tree = stack.tree()
    names = " ".join(" ".join(p.cmdline()) for p in tree if p.is_running())
    for expected in (
        "-m tradeos_pipelines.dagster_ui",  # dagster-webserver behind the guard
        "dagster-daemon",
        "-m api",
        "emulators.http_service",
        "postgres",
        "redis-server",
    ):
        assert expected in names, expected
    assert len(tree) >= 8

    stack.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    left = _gone_within(tree, 10)
    elapsed = time.monotonic() - sent
    assert not left, ([(p.pid, p.cmdline()) for p in left], stack.text()[-2000:])
    assert elapsed < 10, stack.text()[-2000:]
    assert stack.process.wait(1) == 0
    assert "stopped in" in stack.text()
    assert os.path.exists(stack.data_dir / "postgres" / "PG_VERSION")


def test_a_dying_service_stops_the_stack(start_dev_stack) -> None:
    stack = start_dev_stack()
    stack.wait_for_output("the local stack is up", START_TIMEOUT)
    tree = stack.tree()
    sidecar = next(
        p for p in psutil.Process(stack.process.pid).children() if "-m api" in " ".join(p.cmdline())
    )
    os.killpg(sidecar.pid, signal.SIGKILL)

    assert stack.process.wait(20) == 1
    out = stack.text()
    assert "sidecar exited unexpectedly" in out
    assert not _gone_within(tree, 5)

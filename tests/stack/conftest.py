"""Fixtures for the dev-stack tests: a `tradeos dev` subprocess on free ports and a tmp data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tradeos_pipelines.core.settings import PROJECT_ROOT
from tradeos_pipelines.devstack.embedded import find_free_port

# Variables the test session sets for itself; a `tradeos dev` under test must not inherit them,
# or it would use the session's servers and Dagster instance instead of its own.
SESSION_ONLY = (
    "TRADEOS_DATABASE_URL",
    "TRADEOS_REDIS_URL",
    "TRADEOS_SECRET_KEY",
    "TRADEOS_ADMIN_TOKEN",
    "TRADEOS_DAGSTER_DATABASE_URL",
    "TRADEOS_DAGSTER_URL",
    "DAGSTER_HOME",
)


@dataclass
class DevStack:
    """A running `tradeos dev` subprocess and where it listens."""

    process: subprocess.Popen[bytes]
    output: Path
    data_dir: Path
    ports: dict[str, int]

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for_output(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted((self.data_dir / "logs").glob("*.log"))
        )
        raise AssertionError(
            f"`tradeos dev` did not print {needle!r} (exit {self.process.poll()}):\n"
            f"{self.text()}\n{logs}"
        )

    def tree(self) -> list[psutil.Process]:
        """The supervisor and every process below it, right now."""
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]


def stack_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment for a `tradeos dev` child: embedded servers, free ports, its own data dir."""
    env = {k: v for k, v in os.environ.items() if k not in SESSION_ONLY}
    env.update(
        {
            "TRADEOS_DATA_DIR": str(data_dir),
            "TRADEOS_API_PORT": str(find_free_port()),
            "TRADEOS_WS_PORT": str(find_free_port()),
            "TRADEOS_DAGSTER_PORT": str(find_free_port()),
            "TRADEOS_EMULATOR_PORT": str(find_free_port()),
            "TRADEOS_ODATA_EMULATOR_PORT": str(find_free_port()),
            "TRADEOS_ENV": "development",
        }
    )
    env.update(overrides)
    return env


def run_tradeos(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the `tradeos` command (as the console script does) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "tradeos_pipelines.cli", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def start_dev_stack(tmp_path: Path) -> Iterator[Callable[..., DevStack]]:
    """Start `tradeos dev` as a subprocess; anything still running at the end is killed."""
    started: list[DevStack] = []

    def start(**overrides: str) -> DevStack:
        data_dir = tmp_path / f"data{len(started)}"
        env = stack_env(data_dir, **overrides)
        output = tmp_path / f"tradeos-dev{len(started)}.out"
        with output.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "tradeos_pipelines.cli", "dev"],
                env=env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        ports = {k: int(env[k]) for k in env if k.endswith("_PORT") and k.startswith("TRADEOS_")}
        stack = DevStack(process, output, data_dir, ports)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        if stack.process.poll() is None:
            tree = stack.tree()
            stack.process.send_signal(signal.SIGTERM)
            _, alive = psutil.wait_procs(tree, timeout=15)
            for proc in alive:
                proc.kill()

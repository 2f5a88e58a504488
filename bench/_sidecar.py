"""Shared by the sidecar benchmarks: a throwaway database, Redis namespace and sidecar process."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tradeos_pipelines.devstack.embedded import find_free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass
class Stack:
    database_url: str
    redis_url: str
    namespace: str
    api_url: str
    ws_url: str
    token: str
    process: subprocess.Popen


@contextmanager
def sidecar_stack() -> Iterator[Stack]:
    """A migrated database, a Redis namespace and ``python -m api`` on free ports."""
    from cryptography.fernet import Fernet

    from tradeos_pipelines.core.settings import normalize_database_url

    admin_url = normalize_database_url(
        os.environ.get("TRADEOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    redis_url = os.environ.get("TRADEOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    tag = f"{os.getpid()}_{secrets.token_hex(3)}"
    name = f"tradeos_bench_{tag}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    database_url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    token = "bench-" + secrets.token_hex(16)
    env = {
        **os.environ,
        "TRADEOS_DATABASE_URL": database_url,
        "TRADEOS_REDIS_URL": redis_url,
        "TRADEOS_REDIS_NAMESPACE": f"tradeos-bench-{tag}",
        "TRADEOS_SECRET_KEY": Fernet.generate_key().decode(),
        "TRADEOS_ADMIN_TOKEN": token,
        "TRADEOS_DAGSTER_URL": f"http://127.0.0.1:{find_free_port()}",
    }
    env.pop("DAGSTER_HOME", None)
    os.environ.update({k: env[k] for k in env if k.startswith("TRADEOS_")})
    from tradeos_pipelines.core.settings import get_settings
    from tradeos_pipelines.storage.migrate import upgrade_to_head

    get_settings.cache_clear()
    upgrade_to_head(database_url)
    with sidecar_process(env) as (api_url, ws_url, process):
        yield Stack(
            database_url,
            redis_url,
            env["TRADEOS_REDIS_NAMESPACE"],
            api_url,
            ws_url,
            token,
            process,
        )
        import redis

        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=env["TRADEOS_REDIS_NAMESPACE"] + ":*", count=1000):
            client.delete(key)
        from tradeos_pipelines.storage.database import get_engine

        get_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def rss_mb(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def write_results(name: str, results: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return path


@contextmanager
def sidecar_process(env: dict[str, str]) -> Iterator[tuple[str, str, subprocess.Popen]]:
    """``python -m api`` with ``env`` on free ports, once it answers: (REST base URL,
    WebSocket URL, the process); terminated on exit."""
    api_port, ws_port = find_free_port(), find_free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "--port", str(api_port), "--ws-port", str(ws_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=None if os.environ.get("BENCH_SIDECAR_LOG") else subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180  # a busy machine starts Python slowly
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{api_port}/api/v1/health", timeout=2).status_code:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the sidecar did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{api_port}", f"ws://127.0.0.1:{ws_port}/ws", process
    finally:
        process.terminate()
        process.wait(20)

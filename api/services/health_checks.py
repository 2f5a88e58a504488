"""Reachability checks of the sidecar's dependencies (``GET /api/v1/health``).

Each check answers ``{"status": "ok" | "error", "detail": …, "latency_ms": …}`` and never
raises: a dependency that is down makes the sidecar "degraded", not a 500.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy import text

from tradeos_pipelines.storage.database import get_engine

CHECK_TIMEOUT_SECONDS = 2.0
_URL_CREDENTIALS = re.compile(r"//[^/@\s]+@")


def _describe(exc: BaseException) -> str:
    """A short, credential-free description of a failure."""
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    first_line = _URL_CREDENTIALS.sub("//***@", first_line)
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


def _result(ok: bool, detail: str, started: float) -> dict[str, Any]:
    return {
        "status": "ok" if ok else "error",
        "detail": detail,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def check_database() -> dict[str, Any]:
    """``SELECT 1`` on the TradeOS database (blocking; run it in a thread)."""
    started = time.perf_counter()
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 2000"))
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return _result(False, _describe(exc), started)
    return _result(True, "PostgreSQL answers", started)


async def check_redis(client: aioredis.Redis) -> dict[str, Any]:
    """PING the event bus."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(client.ping(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return _result(False, _describe(exc), started)
    return _result(True, "Redis answers", started)


async def check_dagster(http: httpx.AsyncClient, dagster_url: str) -> dict[str, Any]:
    """GET the Dagster webserver's ``/server_info`` (what "sync now" launches runs through)."""
    started = time.perf_counter()
    url = dagster_url.rstrip("/") + "/server_info"
    try:
        response = await http.get(url, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return _result(False, f"{url} unreachable ({_describe(exc)})", started)
    if response.status_code != 200:
        return _result(False, f"{url} answered HTTP {response.status_code}", started)
    try:
        version = response.json().get("dagster_webserver_version") or "unknown version"
    except ValueError:
        version = "unknown version"
    return _result(True, f"Dagster webserver {version}", started)

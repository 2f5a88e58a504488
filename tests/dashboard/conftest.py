"""Fixtures for the dashboard's browser tests: the real sidecar and a headless Chromium.

The sidecar runs as ``python -m api`` (the way the stack starts it) on free ports, against this
session's PostgreSQL database and Redis namespace. Its Dagster URL points at a closed port, so
"sync now" takes the documented fallback (a ``sync_requests`` row) instead of launching runs on
whatever Dagster happens to listen on port 3000 of this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from sqlalchemy.orm import Session

from tradeos_pipelines.core.settings import PROJECT_ROOT
from tradeos_pipelines.devstack.embedded import find_free_port
from tradeos_pipelines.storage.database import get_engine
from tradeos_pipelines.storage.tables import SyncLog, SyncReject

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ARTIFACTS = PROJECT_ROOT / "artifacts"
STARTUP_TIMEOUT_S = 60.0
# The machine running the suite may be busy; live updates normally arrive well under a second.
expect.set_options(timeout=10_000)


DAGSTER_UI = "http://dagster.example:3000"


@dataclass
class Sidecar:
    """A ``python -m api`` process; ``stop``/``start`` keep its ports (for reconnect tests)."""

    api_port: int
    ws_port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def dashboard_url(self, **params: str | int) -> str:
        """The page URL (the relay's address comes from GET /api/v1/config, not from here)."""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"{self.base_url}/dashboard/" + (f"?{query}" if query else "")

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"sidecar exited with {self.process.returncode}:\n{self.log_path.read_text()}"
                )
            try:
                if httpx.get(f"{self.base_url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"sidecar did not answer in time:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def sidecar(
    servers_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sidecar]:
    """The real sidecar on free REST and WebSocket ports, for the whole session."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DAGSTER_HOME"  # no run watcher: this session has no Dagster instance
    }
    env.update(
        {
            "TRADEOS_API_HOST": "127.0.0.1",
            "TRADEOS_API_PORT": str(find_free_port()),
            "TRADEOS_WS_PORT": str(find_free_port()),
            "TRADEOS_DAGSTER_URL": f"http://127.0.0.1:{find_free_port()}",
            # What GET /api/v1/config tells the page (the page takes no addresses from its URL).
            "TRADEOS_PUBLIC_DAGSTER_URL": DAGSTER_UI,
            "PYTHONUNBUFFERED": "1",
        }
    )
    process = Sidecar(
        api_port=int(env["TRADEOS_API_PORT"]),
        ws_port=int(env["TRADEOS_WS_PORT"]),
        log_path=tmp_path_factory.mktemp("sidecar") / "sidecar.log",
        env=env,
    )
    process.start()
    yield process
    process.stop()


# Module scope, not session: while sync_playwright() is open the main thread counts as running
# an event loop, so every later asyncio.run() (the 1C client, the sync engine) would fail.
@pytest.fixture(scope="module")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless (Playwright cannot download its own build here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    b = playwright_session.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield b
    b.close()


@dataclass
class BrowserPage:
    """A page plus the console errors and uncaught exceptions seen on it."""

    page: Page
    errors: list[str]


@pytest.fixture
def browser_page(browser: Browser, redis_url: str) -> Iterator[BrowserPage]:
    """A fresh browser context (empty sessionStorage) at desktop size 1280×800.

    ``redis_url`` empties the Redis namespace first: the sidecar outlives each test, and an
    integration health it cached for the previous test's ``main-1c`` must not show here.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ru-RU")
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    yield BrowserPage(page, errors)
    context.close()


@pytest.fixture
def screenshot() -> Callable[..., Path]:
    """Save a screenshot as artifacts/dashboard-<name>.png (CI keeps them); full page unless
    a dialog is open (a full-page shot would draw the sticky top bar mid-page)."""

    def _take(page: Page, name: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"dashboard-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return _take


@pytest.fixture
def add_sync_log(db: str) -> Callable[..., int]:
    """Insert a finished sync_logs row (and its rejects); returns its id."""

    def _add(
        integration_id: str,
        entity: str,
        *,
        started_at: datetime,
        seconds: float,
        status: str = "success",
        rejects: list[dict[str, Any]] | None = None,
        **counts: Any,
    ) -> int:
        from datetime import timedelta

        with Session(get_engine(db)) as s:
            log = SyncLog(
                integration_id=integration_id,
                entity=entity,
                status=status,
                started_at=started_at,
                finished_at=started_at + timedelta(seconds=seconds),
                **counts,
            )
            s.add(log)
            s.flush()
            for reject in rejects or []:
                s.add(SyncReject(sync_log_id=log.id, **reject))
            s.commit()
            return log.id

    return _add

"""Fixtures of the sync engine tests: an integration on the shared 1C emulator, SQL helpers,
and an event publisher that checks what it announces against the database.

Every test that takes ``integration`` runs once per 1C protocol (the ``onec`` fixture of
tests/fixtures/emulator.py); a test of what only the HTTP service has is marked
``http_service_only`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.event_bus import RedisEventBus
from tradeos_pipelines.storage.database import get_engine

INTEGRATION = "main-1c"
PAGE_SIZE = 50


@pytest.fixture
def integration(make_integration, onec, redis_url) -> str:
    """``main-1c`` on the shared 200-item emulator of each protocol in turn (``onec``: the
    HTTP service, then the standard OData interface), read in pages of 50."""
    return make_integration(INTEGRATION, page_size=PAGE_SIZE, **onec.integration_fields())


@pytest.fixture
def sql(db: str) -> Callable[..., list[Any]]:
    """Run one statement in its own transaction; returns the rows (if any)."""
    engine = get_engine(db)

    def run(query: str, **params: Any) -> list[Any]:
        with engine.begin() as conn:
            result = conn.execute(text(query), params)
            return result.all() if result.returns_rows else []

    return run


@pytest.fixture
def no_overlap(monkeypatch) -> Iterator[None]:
    """Incremental reads start exactly at the watermark (counters then show only changes)."""
    monkeypatch.setenv("TRADEOS_OVERLAP_SECONDS", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class HookedBus:
    """The real Redis event bus, with test hooks run before an event type is published.

    The hooks run where the engine publishes (progress: in the staging thread between pages),
    which lets a test act mid-pass: change 1C, inject a fault, kill the sync's backend.
    """

    def __init__(self) -> None:
        self.bus = RedisEventBus.from_settings()
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.hooks: dict[str, Callable[[dict[str, Any]], None]] = {}

    def publish(self, channel: str, event_type: str, data: dict[str, Any]) -> str | None:
        hook = self.hooks.get(event_type)
        if hook is not None:
            hook(data)
        self.events.append((channel, event_type, data))
        return self.bus.publish(channel, event_type, data)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [data for _, kind, data in self.events if kind == event_type]

    def on_page(self, number: int, action: Callable[[], None]) -> None:
        """Run ``action`` once, after page ``number`` (1-based) was staged."""
        seen = {"pages": 0}

        def hook(_: dict[str, Any]) -> None:
            seen["pages"] += 1
            if seen["pages"] == number:
                action()

        self.hooks["sync.progress"] = hook


@pytest.fixture
def bus(redis_url) -> HookedBus:
    return HookedBus()

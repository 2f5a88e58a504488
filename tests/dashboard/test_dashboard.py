"""The dashboard in headless Chromium against the real sidecar, PostgreSQL and Redis.

Events are published with :class:`RedisEventBus` exactly as the sync engine and the circuit
breaker publish them; the page must pick them up over its WebSocket with no reload.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
import redis
import redis.asyncio as aioredis
from playwright.sync_api import Locator, Page, Route, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.dashboard.conftest import BrowserPage, Sidecar
from tradeos_pipelines.devstack.embedded import find_free_port
from tradeos_pipelines.emulators.http_service import EmulatorServer
from tradeos_pipelines.engine import sync_nomenclature
from tradeos_pipelines.event_bus import RedisEventBus
from tradeos_pipelines.sources.common.breaker import CircuitBreaker
from tradeos_pipelines.storage.database import get_engine
from tradeos_pipelines.storage.tables import Integration, SyncRequest
from tradeos_pipelines.storage.tokens import create_token, list_tokens, revoke_token

pytestmark = pytest.mark.browser

T = TypeVar("T")


def login(page: Page, sidecar: Sidecar, token: str) -> None:
    """Open the page, enter the token and wait until the dashboard shows."""
    page.goto(sidecar.dashboard_url())
    page.fill("#login-token", token)
    page.click("#login-submit")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#live")).to_have_text("Онлайн")


def in_thread(function: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run blocking or asyncio code beside Playwright's sync API (which owns this thread's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args, **kwargs).result()


def card(page: Page, integration_id: str) -> Locator:
    return page.locator(f'article.card[data-integration="{integration_id}"]')


@pytest.fixture
def bus(redis_client: redis.Redis) -> RedisEventBus:
    return RedisEventBus(redis_client)


@pytest.fixture
def seeded(
    make_integration: Callable[..., str], add_sync_log: Callable[..., int]
) -> dict[str, int]:
    """Two integrations with a day of sync history; one had two failures in a row."""
    make_integration("main-1c", name="Основная база 1С")
    make_integration("branch-spb", name="Филиал СПб", base_url="http://127.0.0.1:9/trade")
    now = datetime.now(UTC)
    ids = {}
    # Inserted oldest first, as syncs happen (the API lists newest first by id).
    for hours in range(20, 0, -2):
        add_sync_log(
            "branch-spb",
            "stock",
            started_at=now - timedelta(hours=hours, minutes=30),
            seconds=5,
            fetched=200,
            updated=40,
        )
        add_sync_log(
            "main-1c",
            "nomenclature",
            started_at=now - timedelta(hours=hours),
            seconds=30 + hours,
            fetched=1000 + hours,
            created=10,
            updated=hours * 3,
            unchanged=900,
        )
    for minutes in (40, 20):
        ids["failed"] = add_sync_log(
            "branch-spb",
            "nomenclature",
            status="failed",
            started_at=now - timedelta(minutes=minutes),
            seconds=3,
            error="1С недоступна: connection refused",
        )
    ids["partial"] = add_sync_log(
        "main-1c",
        "stock",
        status="partial",
        started_at=now - timedelta(minutes=7),
        seconds=12,
        fetched=500,
        updated=480,
        rejected=2,
        rejects=[
            {"onec_id": "a1b2", "reason": "количество не число: «много»", "payload": {"q": "?"}},
            {"onec_id": "c3d4", "reason": "<script>alert(1)</script>", "payload": None},
        ],
    )
    return ids


def test_nothing_loads_without_a_valid_token(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    seeded: dict[str, int],
    admin_token: str,
    screenshot: Callable[..., object],
) -> None:
    page = browser_page.page
    api_calls: list[str] = []
    page.on("request", lambda r: api_calls.append(r.url) if "/api/v1/" in r.url else None)
    page.goto(sidecar.dashboard_url())
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    assert api_calls == []  # the page asks for nothing before it has a token

    page.fill("#login-token", "not-the-token")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("Неверный токен администратора.")
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    screenshot(page, "login-error")

    page.fill("#login-token", admin_token)
    page.click("#login-submit")
    expect(card(page, "main-1c")).to_be_visible()
    # Kept for the browser session: a reload goes straight to the dashboard.
    page.reload()
    expect(card(page, "main-1c")).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()

    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("article.card")).to_have_count(0)

    # Signing out and in again without a reload shows everything once, not twice.
    page.fill("#login-token", admin_token)
    page.click("#login-submit")
    expect(page.locator("#live")).to_have_text("Онлайн")
    page.click("#logout")
    expect(page.locator("article.card")).to_have_count(0)
    page.fill("#login-token", admin_token)
    page.click("#login-submit")
    expect(page.locator("article.card")).to_have_count(2)
    expect(page.locator("#chart-success")).to_have_attribute("data-series", "2")
    expect(page.locator("#chart-success canvas")).to_have_count(1)
    expect(page.locator("#ops-integration option")).to_have_count(3)


def test_integrations_charts_and_operations_render(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    seeded: dict[str, int],
    admin_token: str,
    screenshot: Callable[..., object],
) -> None:
    page = browser_page.page
    login(page, sidecar, admin_token)

    main = card(page, "main-1c")
    expect(main.locator("h3")).to_have_text("Основная база 1С")
    expect(main.locator(".badge")).to_have_text("Нет активных запусков")
    expect(main.locator('tr[data-entity="nomenclature"] td')).to_have_text(re.compile("назад"))
    branch = card(page, "branch-spb")
    expect(branch.locator(".badge")).to_have_text("Ошибка")
    expect(branch).to_have_class(re.compile(r"\balert\b"))
    expect(branch.locator(".problem")).to_contain_text("1С недоступна: connection refused")
    # Two failures in a row stand out in the banner too.
    expect(page.locator("#alerts")).to_be_visible()
    expect(page.locator("#alert-list")).to_contain_text(
        "«Филиал СПб»: 2 неудачных синхронизаций подряд"
    )

    for chart_id in ("chart-success", "chart-duration", "chart-rows"):
        figure = page.locator(f"#{chart_id}")
        expect(figure).to_have_attribute("data-series", "2")
        canvas = figure.locator("canvas")
        expect(canvas).to_have_count(1)
        box = canvas.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
    # uPlot's legend names the integrations (one series each).
    expect(page.locator("#chart-success .u-legend")).to_contain_text("Основная база 1С")

    rows = page.locator("#ops-body tr")
    expect(rows).to_have_count(23)
    expect(page.locator("#ops-body tr.failed")).to_have_count(2)
    # Russian number and duration formats.
    expect(rows.first).to_contain_text("Частично")
    expect(page.locator(f'#ops-body tr[data-id="{seeded["partial"]}"]')).to_contain_text("12 с")

    page.select_option("#ops-status", "failed")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Филиал СПб")
    page.select_option("#ops-status", "")
    page.select_option("#ops-integration", "main-1c")
    expect(rows).to_have_count(11)
    screenshot(page, "desktop")

    page.locator(f'#ops-body tr[data-id="{seeded["partial"]}"] button').click()
    dialog = page.locator("#detail")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#detail-rejects tbody tr")).to_have_count(2)
    expect(dialog).to_contain_text("количество не число: «много»")
    # Data is text, never markup.
    expect(dialog.locator("#detail-rejects")).to_contain_text("<script>alert(1)</script>")
    assert dialog.locator("script").count() == 0
    screenshot(page, "detail", full_page=False)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    page.click('button[data-window="7d"]')
    expect(page.locator('button[data-window="7d"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#chart-success")).to_have_attribute("data-series", "2")
    assert browser_page.errors == []


def test_dagster_link_of_a_run(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    make_integration: Callable[..., str],
    add_sync_log: Callable[..., int],
    admin_token: str,
) -> None:
    make_integration("main-1c")
    log_id = add_sync_log(
        "main-1c", "stock", started_at=datetime.now(UTC), seconds=1, run_id="4f1c0de0-run"
    )
    page = browser_page.page
    # ?dagster= is ignored: the address comes from the sidecar (TRADEOS_PUBLIC_DAGSTER_URL).
    page.goto(sidecar.dashboard_url(dagster="http://evil.example"))
    page.fill("#login-token", admin_token)
    page.click("#login-submit")
    page.locator(f'#ops-body tr[data-id="{log_id}"] button').click()
    expect(page.locator("#detail-dagster")).to_have_attribute(
        "href", "http://dagster.example:3000/runs/4f1c0de0-run"
    )


def test_live_feed_falls_back_to_the_page_origin(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    make_integration: Callable[..., str],
    bus: RedisEventBus,
    admin_token: str,
) -> None:
    """With nothing at the configured relay the page uses /ws on its own origin."""
    make_integration("main-1c")
    page = browser_page.page
    # The configured relay does not answer as the relay (wrong path: the WebSocket port
    # refuses it); the CSP allows its origin, so the refusal is what the page sees.
    dead = f"ws://127.0.0.1:{sidecar.ws_port}/not-the-relay"

    def config(route: Route) -> None:
        route.fulfill(json={**route.fetch().json(), "ws_url": dead})

    page.route("**/api/v1/config", config)
    page.goto(sidecar.dashboard_url(ws=f"ws://127.0.0.1:{find_free_port()}/ws"))
    page.fill("#login-token", admin_token)
    page.click("#login-submit")
    expect(page.locator("#live")).to_have_text("Онлайн")
    bus.publish("sync_updates", "sync.started", {"integration_id": "main-1c", "entity": "stock"})
    expect(card(page, "main-1c").locator(".badge")).to_have_text("Синхронизация")


def test_a_revoked_token_signs_the_page_out(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    make_integration: Callable[..., str],
    add_sync_log: Callable[..., int],
    bus: RedisEventBus,
    db: str,
) -> None:
    make_integration("main-1c")
    token = create_token("dashboard-test", database_url=db)
    page = browser_page.page
    login(page, sidecar, token)
    revoke_token(list_tokens(database_url=db)[0].id, database_url=db)
    # The next data call (the refresh after a sync ends) is refused: back to the sign-in form.
    add_sync_log("main-1c", "stock", started_at=datetime.now(UTC), seconds=1)
    bus.publish("sync_updates", "sync.finished", {"integration_id": "main-1c", "entity": "stock"})
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#login-error")).to_have_text("Токен больше не действует. Войдите снова.")
    assert page.evaluate("sessionStorage.length") == 0


def test_status_follows_sync_events_live(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    make_integration: Callable[..., str],
    add_sync_log: Callable[..., int],
    bus: RedisEventBus,
    admin_token: str,
    screenshot: Callable[..., object],
) -> None:
    make_integration("main-1c", name="Основная база 1С")
    page = browser_page.page
    login(page, sidecar, admin_token)
    page.evaluate("window.__notReloaded = true")
    main = card(page, "main-1c")
    expect(main.locator(".badge")).to_have_text("Не запускалась")
    expect(main.locator('tr[data-entity="nomenclature"] td')).to_have_text("никогда")

    event = {"integration_id": "main-1c", "entity": "nomenclature", "run_id": "run-1"}
    bus.publish("sync_updates", "sync.started", event)
    expect(main.locator(".badge")).to_have_text("Синхронизация")
    bus.publish("sync_updates", "sync.progress", {**event, "processed": 4000, "total": 10000})
    expect(main.locator(".progress")).to_contain_text("4 000 из 10 000")
    width = main.locator(".progress-bar").evaluate("el => el.style.width")
    assert width == "40%"
    screenshot(page, "syncing")

    # As the engine does: commit the log row, then announce it.
    started = datetime.now(UTC) - timedelta(seconds=20)
    add_sync_log("main-1c", "nomenclature", started_at=started, seconds=19, fetched=10000)
    bus.publish("sync_updates", "sync.finished", {**event, "status": "success", "fetched": 10000})
    expect(main.locator(".badge")).to_have_text("Нет активных запусков")
    expect(main.locator(".progress")).to_be_hidden()
    expect(main.locator('tr[data-entity="nomenclature"] td')).to_have_text("только что")
    # The end of a sync refreshes the operations list and the charts too.
    expect(page.locator("#ops-body tr")).to_have_count(1)
    expect(page.locator("#chart-success")).to_have_attribute("data-series", "1")

    add_sync_log(
        "main-1c", "stock", status="failed", started_at=started, seconds=2, error="HTTP 503 от 1С"
    )
    # The end of a sync makes the dashboard re-read the REST snapshot (GET …/health).
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/integrations/main-1c/health")
    ) as reread:
        bus.publish(
            "sync_updates", "sync.failed", {**event, "entity": "stock", "error": "HTTP 503 от 1С"}
        )
    expect(main.locator(".badge")).to_have_text("Ошибка")
    expect(main.locator(".problem .explain")).to_have_text(
        "Остатки: 1С вернула ошибку сервера (HTTP 503)."
    )
    expect(main.locator(".problem .original code")).to_have_text("HTTP 503 от 1С")
    expect(page.locator("#ops-body tr.failed")).to_have_count(1)
    # The re-read snapshot agrees with the event: the failed log row makes it "failing".
    snapshot = reread.value.json()
    assert (snapshot["status"], snapshot["entities"]["stock"]["last_sync"]["status"]) == (
        "failing",
        "failed",
    )
    expect(main.locator(".badge")).to_have_text("Ошибка")
    assert page.evaluate("window.__notReloaded") is True
    assert browser_page.errors == []


def test_a_real_engine_sync_shows_live(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    make_integration: Callable[..., str],
    emulator: EmulatorServer,
    bus: RedisEventBus,
    admin_token: str,
) -> None:
    # Small pages, so the engine reports progress several times during the run.
    make_integration("main-1c", name="Основная база 1С", base_url=emulator.base_url, page_size=50)
    page = browser_page.page
    login(page, sidecar, admin_token)
    main = card(page, "main-1c")
    expect(main.locator(".badge")).to_have_text("Не запускалась")
    # Record every status and progress text the card shows while the sync runs.
    main.evaluate(
        """card => {
            window.__seen = [];
            new MutationObserver(() => window.__seen.push(
                card.querySelector('.badge').textContent + ' | ' +
                card.querySelector('.progress').textContent)
            ).observe(card, {subtree: true, childList: true, characterData: true});
        }"""
    )

    result = in_thread(sync_nomenclature, "main-1c", run_id="run-real-1", publisher=bus)

    assert result.status == "success" and result.fetched > 0
    expect(main.locator('tr[data-entity="nomenclature"] td')).to_have_text("только что")
    expect(main.locator(".badge")).to_have_text("Нет активных запусков")
    seen = page.evaluate("window.__seen")
    assert any(text.startswith("Синхронизация") for text in seen), seen
    assert any(" из " in text for text in seen), seen
    row = page.locator("#ops-body tr").first
    expect(row).to_contain_text("Успешно")
    expect(row).to_contain_text(f"{result.fetched}")
    expect(page.locator("#chart-rows")).to_have_attribute("data-series", "1")
    assert browser_page.errors == []


def test_circuit_open_and_alerts_stand_out(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    make_integration: Callable[..., str],
    redis_url: str,
    admin_token: str,
    screenshot: Callable[..., object],
) -> None:
    make_integration("main-1c", name="Основная база 1С")
    page = browser_page.page
    login(page, sidecar, admin_token)
    expect(page.locator("#alerts")).to_be_hidden()

    async def trip_breaker(failures: int, *, then_recover: bool = False) -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            breaker = CircuitBreaker(client, "main-1c", failure_threshold=2, cooldown_seconds=30)
            for _ in range(failures):
                await breaker.record_failure("ConnectError: connection refused")
            if then_recover:
                await breaker.record_success()
        finally:
            await client.aclose()

    # The 1C client's breaker opens after repeated failures and announces it.
    in_thread(asyncio.run, trip_breaker(2))
    main = card(page, "main-1c")
    expect(main.locator(".badge")).to_have_text("1С недоступна")
    expect(main).to_have_class(re.compile(r"\balert\b"))
    expect(page.locator("#alert-list")).to_contain_text("«Основная база 1С»: 1С не отвечает")
    expect(page.locator("#alert-list")).to_contain_text("2 ошибок подряд")
    expect(page.locator(".toast")).to_contain_text("Тревога по «Основная база 1С»")
    screenshot(page, "alerts")

    # 1C answers again: the card recovers; the alert event stays until dismissed.
    in_thread(asyncio.run, trip_breaker(0, then_recover=True))
    expect(main.locator(".badge")).to_have_text("Не запускалась")
    expect(page.locator("#alert-list li")).to_have_count(1)
    page.click("#alerts-dismiss")
    expect(page.locator("#alerts")).to_be_hidden()


def test_sync_now_from_the_page(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    make_integration: Callable[..., str],
    add_sync_log: Callable[..., int],
    bus: RedisEventBus,
    admin_token: str,
    db: str,
) -> None:
    make_integration("main-1c", name="Основная база 1С")
    page = browser_page.page
    login(page, sidecar, admin_token)
    main = card(page, "main-1c")
    main.get_by_role("button", name="Синхронизировать").click()
    # Dagster's webserver is unreachable in this test, so the request waits in sync_requests
    # for the request sensor: the documented fallback, and the page says it was accepted.
    expect(main.locator(".result")).to_have_attribute("data-kind", "ok")
    expect(main.locator(".badge")).to_have_text("В очереди: 3")
    with Session(get_engine(db)) as s:
        request = s.scalars(select(SyncRequest)).one()
    assert request.integration_id == "main-1c"
    assert request.source == "manual"
    assert sorted(request.entities) == ["nomenclature", "orders", "stock"]
    # The waiting request comes with the status snapshot, so a reload still shows it.
    page.reload()
    expect(page.locator("#live")).to_have_text("Онлайн")  # subscribed again before publishing
    main = card(page, "main-1c")
    expect(main.locator(".badge")).to_have_text("В очереди: 3")
    expect(main.locator(".result")).to_be_hidden()  # a fresh page: no message from the click

    # The engine picks the request up and reports as it goes.
    event = {"integration_id": "main-1c", "entity": "stock", "run_id": "run-7"}
    bus.publish("sync_updates", "sync.started", event)
    expect(main.locator(".badge")).to_have_text("Синхронизация")
    add_sync_log("main-1c", "stock", started_at=datetime.now(UTC), seconds=1, run_id="run-7")
    bus.publish("sync_updates", "sync.finished", {**event, "status": "success"})
    expect(main.locator('tr[data-entity="stock"] td')).to_have_text("только что")
    # Nomenclature and orders of the same request have not started: still queued, not idle.
    expect(main.locator(".badge")).to_have_text("В очереди: 2")
    assert browser_page.errors == []


def test_enable_disable_and_test_connection(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    make_integration: Callable[..., str],
    emulator: EmulatorServer,
    admin_token: str,
    db: str,
) -> None:
    make_integration("main-1c", name="Основная база 1С", base_url=emulator.base_url)
    # Nothing listens on port 9 (discard): the connection test must fail with a clear message.
    make_integration("gone-1c", name="Старая база", base_url="http://127.0.0.1:9/trade")
    page = browser_page.page
    login(page, sidecar, admin_token)
    main = card(page, "main-1c")

    main.get_by_role("button", name="Отключить").click()
    expect(main.locator(".badge")).to_have_text("Отключена")
    expect(main.get_by_role("button", name="Синхронизировать")).to_be_disabled()
    with Session(get_engine(db)) as s:
        assert s.get(Integration, "main-1c").enabled is False
    main.get_by_role("button", name="Включить").click()
    expect(main.locator(".badge")).to_have_text("Не запускалась")
    with Session(get_engine(db)) as s:
        assert s.get(Integration, "main-1c").enabled is True

    main.get_by_role("button", name="Проверить связь").click()
    result = main.locator(".result")
    expect(result).to_have_attribute("data-kind", "ok")
    expect(result).to_contain_text(re.compile(r"Связь с 1С есть: версия .+, \d+ мс\."))

    gone = card(page, "gone-1c")
    gone.get_by_role("button", name="Проверить связь").click()
    result = gone.locator(".result")
    expect(result).to_have_attribute("data-kind", "error", timeout=30_000)
    expect(result).to_contain_text("Нет связи с 1С")
    assert "test-key" not in result.inner_text()
    assert browser_page.errors == []


def test_reconnect_replays_missed_events(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    make_integration: Callable[..., str],
    bus: RedisEventBus,
    admin_token: str,
) -> None:
    make_integration("main-1c", name="Основная база 1С")
    page = browser_page.page
    login(page, sidecar, admin_token)
    main = card(page, "main-1c")
    event = {"integration_id": "main-1c", "entity": "nomenclature", "run_id": "run-2"}
    bus.publish("sync_updates", "sync.started", event)
    expect(main.locator(".badge")).to_have_text("Синхронизация")

    sidecar.stop()
    try:
        expect(page.locator("#live")).to_have_text("Переподключение…")
        # Published while the page is cut off: only last_event_id can bring it back.
        bus.publish("sync_updates", "sync.progress", {**event, "processed": 750, "total": 1000})
    finally:
        sidecar.start()
    expect(page.locator("#live")).to_have_text("Онлайн", timeout=30_000)
    expect(main.locator(".progress")).to_contain_text("750 из 1 000")
    expect(main.locator(".badge")).to_have_text("Синхронизация")


def test_phone_width_layout(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    seeded: dict[str, int],
    admin_token: str,
    screenshot: Callable[..., object],
) -> None:
    page = browser_page.page
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, sidecar, admin_token)
    expect(page.locator("#chart-success canvas")).to_have_count(1)
    expect(page.locator("#ops-body tr")).to_have_count(23)
    # Nothing wider than the screen except the operations table, which scrolls in its box.
    too_wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => !e.closest('.table-wrap') && e.getBoundingClientRect().right > 391)
            .map(e => `${e.tagName}.${e.className} ends at ${e.getBoundingClientRect().right}`)"""
    )
    assert too_wide == [], "\n".join(too_wide[:40])
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    cards = page.locator("article.card")
    first, second = cards.nth(0).bounding_box(), cards.nth(1).bounding_box()
    assert first and second and second["y"] > first["y"]  # stacked in one column
    assert first["width"] <= 390
    chart_box = page.locator("#chart-duration canvas").bounding_box()
    assert chart_box and chart_box["width"] <= 390
    screenshot(page, "phone")
    assert browser_page.errors == []

"""The dashboard as a first-time operator reads it (issue 15, part 5), in Chromium against the
real sidecar, PostgreSQL and Redis: distinct idle/queued states, a finished sync that says so,
Russian error explanations with the original at hand, times with their zone, a card that
follows API changes, and links to the operation and to its Dagster run."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as aioredis
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import DAGSTER_UI, Sidecar
from tests.dashboard.test_dashboard import card, in_thread, login
from tradeos_pipelines.event_bus import RedisEventBus
from tradeos_pipelines.sources.common.breaker import CircuitBreaker

pytestmark = pytest.mark.browser

# Yekaterinburg has no daylight saving time: its offset is UTC+5 all year.
ZONE = "Asia/Yekaterinburg"


@pytest.fixture
def bus(redis_client) -> RedisEventBus:
    return RedisEventBus(redis_client)


@pytest.fixture
def page_in_zone(browser: Browser, redis_url: str) -> Iterator[tuple[Page, list[str]]]:
    """A page whose browser lives in Yekaterinburg (the zone its times must be shown in)."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="ru-RU", timezone_id=ZONE
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    yield page, errors
    context.close()


def test_idle_queued_and_finished_read_as_what_they_are(
    sidecar: Sidecar,
    page_in_zone: tuple[Page, list[str]],
    make_integration: Callable[..., str],
    add_sync_log: Callable[..., int],
    bus: RedisEventBus,
    admin_token: str,
    db: str,
) -> None:
    page, errors = page_in_zone
    make_integration("main-1c", name="Основная база 1С")
    login(page, sidecar, admin_token)
    main = card(page, "main-1c")
    # Nothing ran yet: not "waiting", which reads like a queue.
    expect(main.locator(".badge")).to_have_text("Не запускалась")

    # "Sync now" while Dagster is unreachable: three requests wait for the daemon.
    main.get_by_role("button", name="Синхронизировать").click()
    expect(main.locator(".badge")).to_have_text("В очереди: 3")
    expect(main.locator(".result")).to_have_attribute("data-kind", "ok")
    # Eight more runs queued in Dagster, announced live: the count follows.
    for n in range(8):
        bus.publish(
            "runs",
            "run.queued",
            {"run_id": f"run-q{n}", "integration_id": "main-1c", "entity": "orders"},
        )
    expect(main.locator(".badge")).to_have_text("В очереди: 11")

    # The stock request is taken: it syncs, then says how long it took.
    event = {"integration_id": "main-1c", "entity": "stock", "run_id": "run-s"}
    bus.publish("sync_updates", "sync.started", event)
    expect(main.locator(".badge")).to_have_text("Синхронизация")
    log_id = add_sync_log(
        "main-1c",
        "stock",
        started_at=datetime.now(UTC) - timedelta(seconds=20),
        seconds=19,
        run_id="run-s",
    )
    bus.publish(
        "sync_updates",
        "sync.finished",
        {**event, "status": "success", "duration_s": 19.0, "sync_log_id": log_id},
    )
    # The queued note from the click is replaced by the outcome.
    expect(main.locator(".result")).to_have_text("Завершено за 19 с: Остатки.")
    expect(main.locator(".badge")).to_have_text("В очереди: 10")

    # The runs end without syncing (canceled), the requests are dropped: nothing is active.
    for n in range(8):
        bus.publish(
            "runs",
            "run.canceled",
            {"run_id": f"run-q{n}", "integration_id": "main-1c", "entity": "orders"},
        )
    in_thread(_drop_requests, db)
    page.reload()
    expect(page.locator("#live")).to_have_text("Онлайн")
    expect(card(page, "main-1c").locator(".badge")).to_have_text("Нет активных запусков")
    assert errors == []


def _drop_requests(db: str) -> None:
    from sqlalchemy import delete
    from sqlalchemy.orm import Session

    from tradeos_pipelines.storage.database import get_engine
    from tradeos_pipelines.storage.tables import SyncRequest

    with Session(get_engine(db)) as s:
        s.execute(delete(SyncRequest))
        s.commit()


def test_a_failure_is_explained_in_russian_on_a_red_card(
    sidecar: Sidecar,
    page_in_zone: tuple[Page, list[str]],
    make_integration: Callable[..., str],
    add_sync_log: Callable[..., int],
    bus: RedisEventBus,
    admin_token: str,
) -> None:
    page, errors = page_in_zone
    make_integration("main-1c", name="Основная база 1С")
    login(page, sidecar, admin_token)
    main = card(page, "main-1c")
    main.get_by_role("button", name="Синхронизировать").click()
    expect(main.locator(".result")).to_have_attribute("data-kind", "ok")

    error = (
        "sync 1 failed: 1C: 1C 'main-1c' unavailable: GET /hs/api/nomenclature failed 4 "
        "time(s) in 2.0 s (retry budget of 2 s spent); last: connection failed "
        "(ConnectError: All connection attempts failed)"
    )
    event = {"integration_id": "main-1c", "entity": "nomenclature", "run_id": "run-f"}
    bus.publish("sync_updates", "sync.started", event)
    add_sync_log(
        "main-1c",
        "nomenclature",
        status="failed",
        started_at=datetime.now(UTC) - timedelta(seconds=3),
        seconds=2,
        error=error,
    )
    bus.publish("sync_updates", "sync.failed", {**event, "error": error})
    expect(main).to_have_class(re.compile(r"\balert\b"))
    explained = "Номенклатура: 1С недоступна: сервер не отвечает или отклоняет соединение."
    expect(main.locator(".problem .explain")).to_have_text(explained)
    # The original English message is one click away, not in the operator's face.
    original = main.locator(".problem details.original")
    expect(original.locator("code")).to_be_hidden()
    original.locator("summary").click()
    expect(original.locator("code")).to_have_text(error)
    # No green "queued" note stays on the red card: the outcome replaced it.
    expect(main.locator(".result")).to_have_attribute("data-kind", "error")
    expect(main.locator(".result")).to_have_text("Номенклатура: синхронизация завершилась ошибкой.")
    # The operations table explains too, and keeps the original as its tooltip.
    cell = page.locator("#ops-body tr.failed td.error-cell")
    expect(cell).to_have_text("1С недоступна: сервер не отвечает или отклоняет соединение.")
    expect(cell).to_have_attribute("title", error)
    assert errors == []


def test_times_state_their_zone_and_labels_say_what_they_count(
    sidecar: Sidecar,
    page_in_zone: tuple[Page, list[str]],
    make_integration: Callable[..., str],
    add_sync_log: Callable[..., int],
    bus: RedisEventBus,
    admin_token: str,
) -> None:
    page, errors = page_in_zone
    make_integration("main-1c", name="Основная база 1С")
    started = datetime(2026, 11, 20, 7, 15, 0, tzinfo=UTC)
    add_sync_log("main-1c", "stock", started_at=started, seconds=5, fetched=10, updated=4)
    login(page, sidecar, admin_token)
    expect(page.locator("#timezone")).to_have_text(f"Время: {ZONE}, UTC+5")
    # 07:15 UTC is 12:15 in Yekaterinburg, and the row says which zone it is in.
    expect(page.locator("#ops-body tr td").first).to_have_text("20.11.2026, 12:15:00 UTC+5")
    # The table's column counts rows that existed and changed; the chart all rows written.
    expect(page.locator("#ops thead th").nth(6)).to_have_text("Обновлено")
    expect(page.locator("#chart-rows figcaption")).to_have_text(
        "Записано строк за запуск (создано + обновлено + помечено удалёнными)"
    )
    # An alert from the server carries ISO UTC; the page shows it in the same zone.
    bus.publish(
        "alerts",
        "alert",
        {
            "integration_id": "main-1c",
            "kind": "sync_stale",
            "message": "нет успешной синхронизации остатков с 2026-11-20T07:15:00+00:00",
        },
    )
    expect(page.locator("#alert-list li")).to_have_count(1)
    expect(page.locator("#alert-list li")).to_contain_text(
        "«Основная база 1С»: нет успешной синхронизации остатков с 20.11.2026, 12:15:00 UTC+5"
    )
    assert errors == []


def test_the_card_follows_a_change_made_through_the_api(
    sidecar: Sidecar,
    page_in_zone: tuple[Page, list[str]],
    make_integration: Callable[..., str],
    admin_token: str,
) -> None:
    page, errors = page_in_zone
    make_integration("main-1c", name="Основная база 1С", base_url="http://1c-old.example/trade")
    login(page, sidecar, admin_token)
    main = card(page, "main-1c")
    expect(main.locator(".card-head p")).to_have_text(
        "main-1c · HTTP-сервис · http://1c-old.example/trade"
    )
    page.evaluate("window.__notReloaded = true")
    with httpx.Client(
        base_url=f"{sidecar.base_url}/api/v1",
        headers={"Authorization": f"Bearer {admin_token}"},
    ) as api:
        answer = api.patch(
            "/integrations/main-1c",
            json={
                "name": "База 1С (новый сервер)",
                "base_url": "http://1c-new.example/trade",
                "api_key": "new-key-0123456789",
            },
        )
    assert answer.status_code == 200, answer.text
    expect(main.locator(".card-head p")).to_have_text(
        "main-1c · HTTP-сервис · http://1c-new.example/trade"
    )
    expect(main.locator("h3")).to_have_text("База 1С (новый сервер)")
    assert page.evaluate("window.__notReloaded") is True
    assert errors == []


def test_an_open_circuit_leads_with_its_first_cause_and_names_the_1c(
    sidecar: Sidecar,
    page_in_zone: tuple[Page, list[str]],
    make_integration: Callable[..., str],
    redis_url: str,
    admin_token: str,
) -> None:
    page, errors = page_in_zone
    make_integration("main-1c", name="Основная база 1С", base_url="http://1c.example:8080/trade")
    login(page, sidecar, admin_token)

    async def trip() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            breaker = CircuitBreaker(
                client,
                "main-1c",
                failure_threshold=2,
                cooldown_seconds=30,
                base_url="http://1c.example:8080/trade",
            )
            await breaker.record_failure("connection failed (ConnectError: connection refused)")
            await breaker.record_failure("HTTP 503: Service Unavailable")
        finally:
            await client.aclose()

    in_thread(asyncio.run, trip())
    main = card(page, "main-1c")
    expect(main.locator(".badge")).to_have_text("1С недоступна")
    alerts = page.locator("#alert-list li")
    expect(alerts).to_have_count(2)
    cause = "1С недоступна: сервер не отвечает или отклоняет соединение."
    # The card's own alert (from the breaker's state) and the breaker's alert event.
    expect(alerts.nth(0)).to_contain_text(
        "«Основная база 1С»: 1С (http://1c.example:8080/trade) не отвечает"
    )
    expect(alerts.nth(0)).to_contain_text(f"Первая причина: {cause}")
    expect(alerts.nth(1)).to_contain_text(
        "«Основная база 1С»: 1С (http://1c.example:8080/trade) не отвечает: 2 ошибок подряд, "
        "запросы приостановлены до "
    )
    expect(alerts.nth(1)).to_contain_text(f"UTC+5. Первая причина: {cause}")
    assert errors == []


def test_a_dagster_deep_link_opens_the_operation_and_its_run(
    sidecar: Sidecar,
    page_in_zone: tuple[Page, list[str]],
    make_integration: Callable[..., str],
    add_sync_log: Callable[..., int],
    admin_token: str,
) -> None:
    """A materialization's "dashboard" metadata opens that operation; it links back to the
    Dagster run at the address the sidecar's /api/v1/config gives."""
    page, errors = page_in_zone
    make_integration("main-1c", name="Основная база 1С")
    make_integration("branch-spb", name="Филиал СПб")
    add_sync_log("branch-spb", "stock", started_at=datetime.now(UTC), seconds=1)
    log_id = add_sync_log(
        "main-1c",
        "nomenclature",
        started_at=datetime.now(UTC),
        seconds=4,
        run_id="8c0ffee0-run",
        fetched=12,
    )
    page.goto(sidecar.dashboard_url(integration="main-1c", operation=log_id))
    page.fill("#login-token", admin_token)
    page.click("#login-submit")
    dialog = page.locator("#detail")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("data-operation", str(log_id))
    expect(page.locator("#detail-title")).to_have_text(f"Операция №{log_id}: Номенклатура")
    expect(page.locator("#detail-dagster")).to_have_attribute(
        "href", f"{DAGSTER_UI}/runs/8c0ffee0-run"
    )
    # The list behind it is filtered to the linked integration.
    expect(page.locator("#ops-integration")).to_have_value("main-1c")
    expect(page.locator("#ops-body tr")).to_have_count(1)
    assert errors == []

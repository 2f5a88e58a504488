"""The dashboard's product history and alert channel panels, in Chromium, on real syncs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import BrowserPage, Sidecar
from tests.dashboard.test_dashboard import in_thread, login
from tradeos_pipelines.emulators.http_service import EmulatorServer
from tradeos_pipelines.engine import sync_nomenclature

pytestmark = pytest.mark.browser


def test_product_history_panel(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    make_integration: Callable[..., str],
    emulator: EmulatorServer,
    admin_token: str,
    monkeypatch,
) -> None:
    from tradeos_pipelines.core.settings import get_settings

    monkeypatch.setenv("TRADEOS_OVERLAP_SECONDS", "0")
    get_settings.cache_clear()
    make_integration("main-1c", name="Основная база 1С", base_url=emulator.base_url)
    first = in_thread(sync_nomenclature, "main-1c")
    (item,) = emulator.control.change_items(1)
    second = in_thread(sync_nomenclature, "main-1c")
    get_settings.cache_clear()

    page = browser_page.page
    login(page, sidecar, admin_token)
    expect(page.locator("#history-integration")).to_have_value("main-1c")
    page.fill("#history-onec-id", item)
    page.click("#history-form button[type=submit]")
    rows = page.locator("#history-body tr")
    expect(rows).to_have_count(2)
    newest = rows.nth(0).locator("td")
    expect(newest.nth(0)).to_have_text(str(second.sync_version))
    expect(newest.nth(2)).to_have_text("Изменён")
    expect(newest.nth(3)).to_have_text("Цена")
    expect(rows.nth(1).locator("td").nth(0)).to_have_text(str(first.sync_version))
    expect(rows.nth(1).locator("td").nth(2)).to_have_text("Создан")

    page.fill("#history-onec-id", "не-guid")
    page.click("#history-form button[type=submit]")
    expect(page.locator("#history-error")).to_have_text("Код 1С должен быть GUID, например 3f2a…-…")
    expect(rows).to_have_count(0)
    assert browser_page.errors == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]


def test_alert_channels_panel_says_which_are_configured(
    sidecar: Sidecar, browser_page: BrowserPage, admin_token: str, db: str
) -> None:
    page = browser_page.page
    login(page, sidecar, admin_token)
    rows = page.locator("#channels-body tr")
    expect(rows).to_have_count(3)
    for n, name in enumerate(("Веб-хук", "Telegram", "Эл. почта")):
        cells = rows.nth(n).locator("td")
        expect(cells.nth(0)).to_have_text(name)
        expect(cells.nth(1)).to_have_text("Не настроен")
    assert browser_page.errors == []

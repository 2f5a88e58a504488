"""The dashboard's integration form, in Chromium: an OData integration added and changed."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy.orm import Session

from tests.dashboard.conftest import BrowserPage, Sidecar
from tests.dashboard.test_dashboard import card, login
from tests.fixtures.emulator import ODATA_PASSWORD, ODATA_USER
from tradeos_pipelines.core.secrets import decrypt_json
from tradeos_pipelines.emulators.odata import ODataEmulatorServer
from tradeos_pipelines.storage.database import get_engine
from tradeos_pipelines.storage.tables import Integration

pytestmark = pytest.mark.browser


def test_an_odata_integration_is_added_and_its_price_type_chosen_in_the_form(
    sidecar: Sidecar,
    browser_page: BrowserPage,
    odata_emulator: ODataEmulatorServer,
    admin_token: str,
    db: str,
) -> None:
    page = browser_page.page
    login(page, sidecar, admin_token)
    expect(page.locator("#integrations-empty")).to_be_visible()

    page.get_by_role("button", name="Добавить интеграцию").click()
    form = page.locator("#integration-form")
    expect(form.locator("#integration-odata")).to_be_hidden()
    form.locator("[name=name]").fill("Торговля OData")
    form.locator("[name=id]").fill("trade-odata")
    form.locator("[name=base_url]").fill(odata_emulator.base_url)
    form.locator("[name=protocol]").select_option("odata")
    # OData is Basic auth only: the form switches to the 1C user and shows the OData settings.
    expect(form.locator("[name=auth_type]")).to_have_value("basic")
    expect(form.locator("[name=auth_type]")).to_be_disabled()
    expect(form.locator("#integration-odata")).to_be_visible()
    form.locator("[name=username]").fill(ODATA_USER)
    form.locator("[name=password]").fill(ODATA_PASSWORD)
    form.locator("[name=price_register]").select_option("11.5")
    form.get_by_role("button", name="Сохранить").click()

    expect(page.locator("#integration-dialog")).to_be_hidden()
    added = card(page, "trade-odata")
    expect(added.locator("h3")).to_have_text("Торговля OData")
    expect(added.locator(".card-head p")).to_have_text(
        f"trade-odata · OData · {odata_emulator.base_url}"
    )
    with Session(get_engine(db)) as s:
        row = s.get(Integration, "trade-odata")
        assert (row.protocol, row.auth_type, row.base_url) == (
            "odata",
            "basic",
            odata_emulator.base_url,
        )
        assert row.options == {
            "price_type_key": None,
            "price_register": "11.5",
            "customer_key": None,
        }
        assert decrypt_json(row.credentials_encrypted) == {
            "username": ODATA_USER,
            "password": ODATA_PASSWORD,
        }

    # Changing it: the price types come from test-connection of the saved integration.
    retail = _price_type_key(odata_emulator, "Розничная")
    added.get_by_role("button", name="Изменить").click()
    expect(form.locator("[name=protocol]")).to_have_value("odata")
    expect(form.locator("[name=username]")).to_have_value(ODATA_USER)
    form.get_by_role("button", name="Найти виды цен").click()
    options = page.locator("#integration-price-types option")
    expect(options).to_have_count(2)
    expect(page.locator(f'#integration-price-types option[value="{retail}"]')).to_have_text(
        "Розничная"
    )
    form.locator("[name=price_type_key]").fill(retail)
    form.get_by_role("button", name="Сохранить").click()
    expect(page.locator("#integration-dialog")).to_be_hidden()
    with Session(get_engine(db)) as s:
        row = s.get(Integration, "trade-odata")
        assert row.options == {
            "price_type_key": retail,
            "price_register": "11.5",
            "customer_key": None,
        }
        # The password was left empty in the edit: the stored one stays.
        assert decrypt_json(row.credentials_encrypted)["password"] == ODATA_PASSWORD
    assert browser_page.errors == []


def test_the_form_shows_what_the_api_refuses(
    sidecar: Sidecar, browser_page: BrowserPage, admin_token: str, db: str
) -> None:
    page = browser_page.page
    login(page, sidecar, admin_token)
    page.get_by_role("button", name="Добавить интеграцию").click()
    form = page.locator("#integration-form")
    form.locator("[name=name]").fill("Без вида цены")
    form.locator("[name=base_url]").fill("http://1c.example/trade")
    form.locator("[name=protocol]").select_option("odata")
    form.locator("[name=username]").fill(ODATA_USER)
    form.locator("[name=password]").fill(ODATA_PASSWORD)
    form.locator("[name=price_type_key]").fill("розничная")
    form.get_by_role("button", name="Сохранить").click()
    error = form.locator("#integration-form-error")
    expect(error).to_contain_text("price_type_key")
    expect(page.locator("#integration-dialog")).to_be_visible()
    with Session(get_engine(db)) as s:
        assert s.query(Integration).count() == 0


def _price_type_key(emulator: ODataEmulatorServer, name: str) -> str:
    answer = httpx.get(
        emulator.odata_url + "/Catalog_ВидыЦен",
        params={"$format": "json"},
        auth=(ODATA_USER.encode(), ODATA_PASSWORD.encode()),
    )
    return next(r["Ref_Key"] for r in answer.json()["value"] if r["Description"] == name)

"""Integrations on the standard OData interface: the protocol and its options through the admin
API, and a connection test that tells the 1C administrator what to publish and allow."""

from __future__ import annotations

from tests.fixtures.emulator import ODATA_PASSWORD, ODATA_USER

BASIC = {"auth_type": "basic", "username": ODATA_USER, "password": ODATA_PASSWORD}
PRICE_TYPE = "61b86622-b67c-11b0-944a-91b72265b1f5"


def _create(api, **fields):
    body = {"name": "УТ по OData", "base_url": "http://1c.local/trade", **BASIC, **fields}
    return api.post("/integrations", json=body)


def _fields(response) -> set[str]:
    return {item["field"] for item in response.json()["detail"]}


def test_create_odata_integration_with_options(api):
    response = _create(api, id="ut-odata", protocol="odata", options={"price_type_key": PRICE_TYPE})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["protocol"] == "odata"
    assert body["options"] == {
        "price_type_key": PRICE_TYPE,
        "price_register": "11.5",
        "customer_key": None,
    }

    changed = api.patch("/integrations/ut-odata", json={"options": {"price_register": "11.4"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["options"] == {
        "price_type_key": None,
        "price_register": "11.4",
        "customer_key": None,
    }


def test_existing_and_default_integrations_speak_the_http_service(api):
    body = _create(api, id="ut-hs").json()
    assert (body["protocol"], body["options"]) == ("http_service", None)


def test_unknown_protocol_is_a_422_naming_the_field(api):
    response = _create(api, protocol="commerceml")
    assert response.status_code == 422 and _fields(response) == {"protocol"}


def test_odata_takes_only_basic_auth(api):
    response = _create(
        api, protocol="odata", auth_type="api_key", api_key="k" * 20, username=None, password=None
    )
    assert response.status_code == 422 and _fields(response) == {"auth_type"}


def test_options_of_another_protocol_are_refused(api):
    response = _create(api, options={"price_register": "11.5"})
    assert response.status_code == 422 and _fields(response) == {"options"}


def test_bad_odata_options_name_the_option(api):
    bad_register = _create(api, protocol="odata", options={"price_register": "12"})
    assert bad_register.status_code == 422
    assert _fields(bad_register) == {"options.price_register"}
    bad_key = _create(api, protocol="odata", options={"price_type_key": "Розничная"})
    assert bad_key.status_code == 422 and _fields(bad_key) == {"options.price_type_key"}


def _odata_integration(make_integration, emulator, integration_id: str = "ut-odata") -> str:
    return make_integration(
        integration_id,
        base_url=emulator.base_url,
        username=ODATA_USER,
        password=ODATA_PASSWORD,
        protocol="odata",
        options={"price_register": "11.5"},
    )


def test_connection_test_lists_price_types_when_everything_is_published(
    api, make_integration, odata_emulator
):
    _odata_integration(make_integration, odata_emulator)

    body = api.post("/integrations/ut-odata/test-connection").json()

    assert body["ok"] is True and body["protocol"] == "odata" and body["findings"] == []
    assert body["error"] is None and body["latency_ms"] > 0
    assert sorted(p["name"] for p in body["price_types"]) == ["Оптовая", "Розничная"]
    # The emulator does not publish БСП's register of subsystem versions.
    assert body["version"] is None


def test_connection_test_says_what_to_publish_and_allow(api, make_integration, odata_emulator):
    _odata_integration(make_integration, odata_emulator)
    odata_emulator.control.unpublish(["Catalog_Склады"])
    odata_emulator.control.deny_read("InformationRegister_ШтрихкодыУпаковокТоваров")

    body = api.post("/integrations/ut-odata/test-connection").json()

    assert body["ok"] is False
    assert body["error"] == "2 problem(s) in the 1C publication; see findings"
    found = {(f["object"], f["problem"]) for f in body["findings"]}
    assert found == {
        ("Catalog_Склады", "not_published"),
        ("InformationRegister_ШтрихкодыУпаковокТоваров", "not_readable"),
    }
    by_object = {f["object"]: f for f in body["findings"]}
    assert "Настройка стандартного интерфейса OData" in by_object["Catalog_Склады"]["fix"]
    unreadable = by_object["InformationRegister_ШтрихкодыУпаковокТоваров"]
    assert "Нарушение прав доступа" in unreadable["message"]
    assert "право «Чтение»" in unreadable["fix"]
    assert ODATA_PASSWORD not in str(body)


def test_connection_test_with_a_wrong_password_says_so(api, make_integration, odata_emulator):
    make_integration(
        "wrong",
        base_url=odata_emulator.base_url,
        username=ODATA_USER,
        password="не-тот",
        protocol="odata",
        options={},
    )
    body = api.post("/integrations/wrong/test-connection").json()
    assert body["ok"] is False and body["protocol"] == "odata"
    assert body["error"].startswith("1C 'wrong' refused the user name or password (401)")

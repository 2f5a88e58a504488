"""Integration CRUD: validation names the field, secrets are encrypted and never shown."""

from __future__ import annotations

import hashlib
import logging

import pytest
from sqlalchemy import select, text

from tradeos_pipelines.storage.integrations import load_integration
from tradeos_pipelines.storage.tables import Integration, IntegrationLog, SyncLog

API_KEY = "super-secret-api-key-42"
PASSWORD = "пароль-очень-секретный"


def _create(api, **fields):
    body = {
        "name": "Основная база",
        "base_url": "http://1c.local/trade/",
        "auth_type": "api_key",
        "api_key": API_KEY,
        **fields,
    }
    return api.post("/integrations", json=body)


def _fields(response):
    return {item["field"] for item in response.json()["detail"]}


def test_create_derives_a_transliterated_slug_and_masks_secrets(api, session, caplog):
    caplog.set_level(logging.DEBUG)
    response = _create(api)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == "osnovnaya-baza"
    assert body["base_url"] == "http://1c.local/trade"
    assert body["api_key"] == "***" and body["password"] is None
    assert len(body["webhook_secret"]) >= 32  # shown once, on create
    assert body["webhook_path"] == "/api/v1/webhooks/1c/osnovnaya-baza"
    assert body["timezone"] == "Europe/Moscow" and body["conflict_policy"] == "onec_wins"

    row = session.scalars(select(Integration)).one()
    assert API_KEY not in row.credentials_encrypted
    assert body["webhook_secret"] not in (row.webhook_secret_encrypted or "")
    config = load_integration(session, "osnovnaya-baza")
    assert config.api_key == API_KEY and config.webhook_secret == body["webhook_secret"]

    shown = api.get("/integrations/osnovnaya-baza").json()
    assert shown["webhook_secret"] == "***" and shown["api_key"] == "***"
    listing = api.get("/integrations").json()
    assert listing["count"] == 1 and listing["data"][0]["id"] == "osnovnaya-baza"
    everything = response.text + api.get("/integrations").text
    assert API_KEY not in everything
    assert API_KEY not in caplog.text and body["webhook_secret"] not in caplog.text


def test_basic_auth_shows_username_and_masks_password(api):
    response = _create(
        api,
        id="basic-1c",
        auth_type="basic",
        api_key=None,
        username="Администратор",
        password=PASSWORD,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["username"] == "Администратор" and body["password"] == "***"
    assert PASSWORD not in response.text


def test_duplicate_id_is_409(api):
    assert _create(api, id="main-1c").status_code == 201
    again = _create(api, id="main-1c")
    assert again.status_code == 409 and "main-1c" in again.json()["detail"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"base_url": "ftp://1c.local"}, "base_url"),
        ({"base_url": "not a url"}, "base_url"),
        ({"auth_type": "oauth"}, "auth_type"),
        ({"api_key": None}, "api_key"),
        ({"auth_type": "basic", "api_key": None, "username": "u"}, "password"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"conflict_policy": "coin_flip"}, "conflict_policy"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 1001}, "page_size"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"retry_budget_seconds": -1}, "retry_budget_seconds"),
        ({"retry_budget_seconds": 3601}, "retry_budget_seconds"),
        ({"id": "Bad_Slug"}, "id"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"page_size": "500"}, "page_size"),
        ({"enabled": 1}, "enabled"),
        ({"timeout_seconds": True}, "timeout_seconds"),
        ({"webhook_secret": "секрет\tс табуляцией"}, "webhook_secret"),
        ({"base_url": "http://[49f:51eC]/trade"}, "base_url"),
    ],
)
def test_validation_names_the_field(api, fields, field):
    response = _create(api, **fields)
    assert response.status_code == 422, response.text
    assert field in _fields(response), response.json()


def test_a_name_without_letters_or_digits_gets_an_id_of_its_own(api):
    created = _create(api, name="!!!")
    assert created.status_code == 201, created.text
    # sha256("!!!") begins with 5b1d2e0f: stable, so the same name always means the same id.
    assert created.json()["id"] == "integration-" + hashlib.sha256(b"!!!").hexdigest()[:8]


def test_an_unknown_query_parameter_is_422_naming_it(api):
    typo = api.get("/sync-logs", params={"integraton_id": "main-1c"})
    assert typo.status_code == 422
    assert typo.json()["detail"] == [
        {
            "field": "integraton_id",
            "loc": ["query", "integraton_id"],
            "msg": "unknown query parameter; this route takes cursor, entity, integration_id, "
            "limit, status",
            "type": "value_error",
        }
    ]


def test_validation_error_never_echoes_a_secret(api):
    response = _create(api, api_key=None, auth_type="basic", username="u", password=["x" * 3])
    assert response.status_code == 422
    assert "input" not in response.text
    response = _create(api, timezone="Nowhere/City", api_key=API_KEY)
    assert API_KEY not in response.text


def test_patch_changes_fields_and_credentials(api, session):
    _create(api, id="main-1c")
    response = api.patch(
        "/integrations/main-1c", json={"name": "Склад", "page_size": 500, "api_key": "new-key"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Склад" and response.json()["page_size"] == 500
    assert load_integration(session, "main-1c").api_key == "new-key"
    # Switching to basic needs both username and password.
    partial = api.patch("/integrations/main-1c", json={"auth_type": "basic", "username": "u"})
    assert partial.status_code == 422 and "password" in _fields(partial)
    switched = api.patch(
        "/integrations/main-1c",
        json={"auth_type": "basic", "username": "u", "password": PASSWORD},
    )
    assert switched.status_code == 200, switched.text
    session.expire_all()
    config = load_integration(session, "main-1c")
    assert (config.auth_type, config.username, config.password, config.api_key) == (
        "basic",
        "u",
        PASSWORD,
        None,
    )
    assert api.patch("/integrations/main-1c", json={"page_size": None}).status_code == 422
    assert api.patch("/integrations/nope", json={"name": "x"}).status_code == 404


def test_retry_budget_is_stored_and_reaches_the_1c_client(api, session):
    created = _create(api, id="main-1c")
    assert created.json()["retry_budget_seconds"] == 120.0  # the default rides out a restart
    patched = api.patch("/integrations/main-1c", json={"retry_budget_seconds": 300})
    assert patched.status_code == 200, patched.text
    assert patched.json()["retry_budget_seconds"] == 300.0
    assert load_integration(session, "main-1c").retry_budget_seconds == 300.0


def test_enable_disable(api):
    _create(api, id="main-1c")
    assert api.post("/integrations/main-1c/disable").json()["enabled"] is False
    assert api.get("/integrations/main-1c").json()["enabled"] is False
    assert api.post("/integrations/main-1c/enable").json()["enabled"] is True
    assert api.post("/integrations/nope/enable").status_code == 404


def test_delete_removes_data_and_request_log(api, session):
    _create(api, id="main-1c")
    session.add(SyncLog(integration_id="main-1c", entity="stock", status="success"))
    session.add(
        IntegrationLog(
            integration_id="main-1c",
            method="GET",
            path="/hs/api/health",
            status_code=200,
            duration_ms=3,
        )
    )
    session.commit()
    assert api.delete("/integrations/main-1c").status_code == 204
    for table in ("integrations", "sync_logs", "integration_logs"):
        assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
    assert api.get("/integrations/main-1c").status_code == 404
    assert api.delete("/integrations/main-1c").status_code == 404


def test_sync_now_on_disabled_integration_is_409(api):
    _create(api, id="main-1c", enabled=False)
    response = api.post("/integrations/main-1c/sync", json={"entities": ["stock"]})
    assert response.status_code == 409 and "disabled" in response.json()["detail"]


def test_sync_now_validates_entities(api):
    _create(api, id="main-1c")
    response = api.post("/integrations/main-1c/sync", json={"entities": ["prices"]})
    assert response.status_code == 422 and "entities.0" in _fields(response)
    response = api.post("/integrations/main-1c/sync", json={"entities": []})
    assert response.status_code == 422 and "entities" in _fields(response)
    assert api.post("/integrations/nope/sync", json={}).status_code == 404

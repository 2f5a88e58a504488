"""The foundation: settings, URL normalisation, secrets, migrations, the event bus."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from tests.conftest import SESSION_TAG
from tradeos_pipelines.core.secrets import (
    SecretDecryptError,
    decrypt_json,
    encrypt_json,
    new_secret_key,
)
from tradeos_pipelines.core.settings import (
    Settings,
    SettingsError,
    load_settings,
    normalize_database_url,
)
from tradeos_pipelines.event_bus import RedisEventBus, UnknownChannel, decode_event, stream_key
from tradeos_pipelines.storage.integrations import load_integration
from tradeos_pipelines.storage.migrate import downgrade_to_base, upgrade_to_head

CONTRACT_TABLES = {
    "integrations",
    "sync_logs",
    "integration_logs",
    "products",
    "warehouses",
    "stock",
    "orders",
    "order_items",
    "sync_conflicts",
    "sync_rejects",
}


def test_bare_postgres_url_is_normalised_to_psycopg2():
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalize_database_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"


def test_malformed_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("TRADEOS_API_PORT", "eighty")
    with pytest.raises(SettingsError, match="TRADEOS_API_PORT"):
        load_settings()


def test_non_postgres_database_url_is_refused(monkeypatch):
    monkeypatch.setenv("TRADEOS_DATABASE_URL", "mysql://root@localhost/db")
    with pytest.raises(SettingsError, match=r"TRADEOS_DATABASE_URL: .*PostgreSQL"):
        load_settings()


def test_bad_secret_key_is_refused(monkeypatch):
    monkeypatch.setenv("TRADEOS_SECRET_KEY", "not-a-fernet-key")
    with pytest.raises(SettingsError, match=r"TRADEOS_SECRET_KEY: .*Fernet"):
        load_settings()


def test_production_requires_secrets(monkeypatch):
    monkeypatch.setenv("TRADEOS_ENV", "production")
    monkeypatch.delenv("TRADEOS_SECRET_KEY", raising=False)
    monkeypatch.setenv("TRADEOS_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("TRADEOS_REDIS_URL", "redis://h:6379/0")
    with pytest.raises(SettingsError, match="TRADEOS_SECRET_KEY is required"):
        load_settings()


def test_missing_database_url_names_it():
    with pytest.raises(SettingsError, match="TRADEOS_DATABASE_URL is not set"):
        Settings(database_url=None).require_database_url()


def test_credentials_round_trip_and_wrong_key_is_clear():
    token = encrypt_json({"username": "Администратор", "password": "пароль"})
    assert "Администратор" not in token
    assert decrypt_json(token) == {"username": "Администратор", "password": "пароль"}
    with pytest.raises(SecretDecryptError, match="TRADEOS_SECRET_KEY"):
        decrypt_json(token, key=new_secret_key())


def test_migrations_upgrade_downgrade_upgrade_on_empty_database(server_urls):
    admin_url = server_urls[0]
    # A name of this session's own: parallel sessions on one server must not drop each other's.
    name = f"tradeos_migrations_{SESSION_TAG}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_to_head(url)
        engine = create_engine(url)
        assert set(inspect(engine).get_table_names()) >= CONTRACT_TABLES
        downgrade_to_base(url)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade_to_head(url)
        assert set(inspect(engine).get_table_names()) >= CONTRACT_TABLES
        with engine.connect() as conn:
            assert conn.execute(text("SELECT nextval('sync_version_seq')")).scalar() == 1
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_integration_credentials_are_encrypted_at_rest(make_integration, session):
    make_integration("kazan-1c", username="Администратор", password="секрет")
    raw = session.execute(
        text("SELECT credentials_encrypted FROM integrations WHERE id = 'kazan-1c'")
    ).scalar_one()
    assert "секрет" not in raw and "Администратор" not in raw
    config = load_integration(session, "kazan-1c")
    assert (config.username, config.password) == ("Администратор", "секрет")
    assert "секрет" not in repr(config)


def test_event_bus_keeps_cyrillic_and_ids(redis_client):
    bus = RedisEventBus(redis_client)
    event_id = bus.publish(
        "sync_updates", "sync.started", {"integration_id": "main-1c", "msg": "Товары"}
    )
    [(entry_id, fields)] = redis_client.xrange(stream_key("sync_updates"))
    event = decode_event("sync_updates", entry_id, fields)
    assert event["id"] == event_id
    assert event["type"] == "sync.started"
    assert event["data"]["msg"] == "Товары"
    with pytest.raises(UnknownChannel, match="nope"):
        bus.publish("nope", "x", {})

"""What `tradeos dev` prepares: keys kept once, databases created once, the demo integration."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tradeos_pipelines.core.secrets import decrypt_json, new_secret_key
from tradeos_pipelines.core.settings import PROJECT_ROOT, Settings
from tradeos_pipelines.devstack.bootstrap import (
    DEMO_ODATA_PRICE_TYPE,
    DataDir,
    StackError,
    admin_token,
    dagster_database_url,
    dev_secret_key,
    ensure_database,
    ensure_demo_integration,
    ensure_demo_odata_integration,
    prepare_dagster_home,
)
from tradeos_pipelines.storage.tables import Integration


def _dev_settings(**values: object) -> Settings:
    return Settings(env="development", secret_key=None, admin_token=None, **values)


def test_dev_secret_key_and_token_are_generated_once_and_private(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "state")
    data.create()
    key = dev_secret_key(_dev_settings(), data)
    token, from_env = admin_token(_dev_settings(), data)
    assert not from_env
    assert dev_secret_key(_dev_settings(), data) == key
    assert admin_token(_dev_settings(), data) == (token, False)
    for path in (data.secret_key_file, data.admin_token_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_configured_secrets_win_and_are_not_written(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "state")
    data.create()
    key = new_secret_key()
    settings = Settings(env="development", secret_key=key, admin_token="from-env")
    assert dev_secret_key(settings, data) == key
    assert admin_token(settings, data) == ("from-env", True)
    assert not data.secret_key_file.exists()
    assert not data.admin_token_file.exists()


def test_dagster_home_gets_the_project_instance_config(tmp_path: Path) -> None:
    home = prepare_dagster_home(DataDir(tmp_path))
    assert (home / "dagster.yaml").read_text() == (PROJECT_ROOT / "dagster.yaml").read_text()


@pytest.fixture
def scratch_database(server_urls) -> Iterator[str]:
    """A database of our own on the test server (dropped with its `_dagster` sibling)."""
    admin_url = server_urls[0]
    name = f"tradeos_boot_{os.getpid()}_{secrets.token_hex(3)}"
    url = ensure_database(admin_url, name)
    yield url
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for db in (name, f"{name}_dagster"):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    admin.dispose()


def test_databases_are_created_once(scratch_database: str, monkeypatch) -> None:
    monkeypatch.delenv("TRADEOS_DAGSTER_DATABASE_URL", raising=False)
    name = make_url(scratch_database).database
    assert ensure_database(scratch_database, name) == scratch_database  # already there: fine
    dagster_url = dagster_database_url(scratch_database)
    assert make_url(dagster_url).database == f"{name}_dagster"
    assert dagster_database_url(scratch_database) == dagster_url
    engine = create_engine(dagster_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_database()")).scalar() == f"{name}_dagster"
    engine.dispose()


def test_explicit_dagster_database_url_is_used_as_is(monkeypatch) -> None:
    url = "postgresql+psycopg2://u@db.example:5432/elsewhere"
    monkeypatch.setenv("TRADEOS_DAGSTER_DATABASE_URL", url)
    assert dagster_database_url("postgresql+psycopg2://u@h:5432/app") == url


def test_database_creation_failure_is_one_clear_message() -> None:
    with pytest.raises(StackError, match="cannot create the database 'x_dagster'"):
        ensure_database("postgresql+psycopg2://nobody@127.0.0.1:1/none", "x_dagster")


def test_demo_integration_is_created_then_refreshed(db: str) -> None:
    key = new_secret_key()
    ensure_demo_integration(db, "http://127.0.0.1:18080/trade", key)
    engine = create_engine(db)
    with Session(engine) as session:
        session.execute(text("UPDATE integrations SET page_size = 500 WHERE id = 'demo-1c'"))
        session.commit()

    new_key = new_secret_key()
    ensure_demo_integration(db, "http://127.0.0.1:28080/trade", new_key)
    with Session(engine) as session:
        rows = session.scalars(select(Integration)).all()
        assert [r.id for r in rows] == ["demo-1c"]
        row = rows[0]
        assert row.base_url == "http://127.0.0.1:28080/trade"
        assert row.auth_type == "api_key"
        assert row.page_size == 500  # what the user changed is kept
        assert "demo-key" not in row.credentials_encrypted
        assert decrypt_json(row.credentials_encrypted, key=new_key) == {"api_key": "demo-key"}
    engine.dispose()


def test_demo_odata_integration_is_created_then_refreshed(db: str) -> None:
    key = new_secret_key()
    ensure_demo_odata_integration(db, "http://127.0.0.1:18081/trade", key)
    new_key = new_secret_key()
    ensure_demo_odata_integration(db, "http://127.0.0.1:28081/trade", new_key)
    engine = create_engine(db)
    with Session(engine) as session:
        [row] = session.scalars(select(Integration)).all()
        assert (row.id, row.protocol, row.auth_type, row.base_url) == (
            "demo-odata",
            "odata",
            "basic",
            "http://127.0.0.1:28081/trade",
        )
        assert row.options == {"price_type_key": DEMO_ODATA_PRICE_TYPE, "price_register": "11.5"}
        assert decrypt_json(row.credentials_encrypted, key=new_key) == {
            "username": "Администратор",
            "password": "demo",
        }
    engine.dispose()


def test_demo_odata_price_type_is_the_emulators_retail_price_type() -> None:
    from tradeos_pipelines.emulators.odata import ODataEmulatorServer

    with ODataEmulatorServer(items=10) as emulator:
        response = httpx.get(
            emulator.odata_url + "/Catalog_ВидыЦен", params={"$format": "json"}, timeout=10
        )
    types = {row["Description"]: row["Ref_Key"] for row in response.json()["value"]}
    assert types["Розничная"] == DEMO_ODATA_PRICE_TYPE

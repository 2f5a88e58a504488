"""Shared fixtures: a real PostgreSQL database and a real Redis namespace per test session.

Servers: ``TRADEOS_TEST_POSTGRES_URL`` (an admin URL; each session creates and later drops its
own database on that server) and ``TRADEOS_TEST_REDIS_URL``. CI points them at the machine's
PostgreSQL and Redis; without them the session starts embedded servers (the same ones the dev
stack uses). Every session gets its own database and Redis key namespace, so parallel sessions
on one server never see each other's data.

The environment variables the code reads (``TRADEOS_DATABASE_URL``, ``TRADEOS_REDIS_URL``,
``TRADEOS_REDIS_NAMESPACE``, ``TRADEOS_SECRET_KEY``, ``TRADEOS_ADMIN_TOKEN``) are set for the
whole session, so subprocesses (Dagster, the sidecar, the stack) inherit them.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tradeos_pipelines.core.secrets import encrypt_json, encrypt_text, new_secret_key
from tradeos_pipelines.core.settings import get_settings, normalize_database_url
from tradeos_pipelines.storage.tables import Integration

# Fixture plugins shared across test folders (the 1C emulator, a Dagster instance, the
# fault numbers the reliability tests report).
pytest_plugins = [
    name
    for name in ("tests.fixtures.emulator", "tests.fixtures.dagster", "tests.fixtures.faults")
    if importlib.util.find_spec(name) is not None
]

# Hypothesis: no per-example deadline in CI (a loaded 2-core runner makes a slow example a
# flaky failure, not a finding); HYPOTHESIS_PROFILE=dev keeps the library default locally.
hypothesis_settings.register_profile("ci", deadline=None, print_blob=True)
hypothesis_settings.register_profile("dev", deadline=200)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(16)
SECRET_KEY = new_secret_key()
SESSION_TAG = f"{os.getpid()}_{secrets.token_hex(3)}"


def _embedded_urls(tmp_root: Path) -> tuple[str, str]:
    from tradeos_pipelines.devstack.embedded import start_embedded_postgres, start_embedded_redis

    pg = start_embedded_postgres(tmp_root / "postgres")
    rd = start_embedded_redis(tmp_root / "redis")
    return pg, rd


@pytest.fixture(scope="session")
def server_urls(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(PostgreSQL admin URL, Redis URL) of the servers this session uses."""
    pg = os.environ.get("TRADEOS_TEST_POSTGRES_URL")
    rd = os.environ.get("TRADEOS_TEST_REDIS_URL")
    if pg and rd:
        return normalize_database_url(pg), rd
    embedded_pg, embedded_rd = _embedded_urls(tmp_path_factory.mktemp("servers"))
    return normalize_database_url(pg) if pg else embedded_pg, rd or embedded_rd


@pytest.fixture(scope="session")
def database_url(server_urls: tuple[str, str]) -> Iterator[str]:
    """A fresh database with every migration applied, dropped when the session ends."""
    from tradeos_pipelines.storage.migrate import upgrade_to_head

    admin_url = server_urls[0]
    name = f"tradeos_test_{SESSION_TAG}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade_to_head(url)
    yield url
    from tradeos_pipelines.storage.database import get_engine

    get_engine.cache_clear()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def tradeos_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Point every TRADEOS_* setting at this session's database, Redis namespace and keys.

    Autouse but lazy about servers: pure unit tests that never touch a server still get the
    secret key and token; the database is created on first use of ``database_url``.
    """
    env = {
        "TRADEOS_ENV": "development",
        "TRADEOS_REDIS_NAMESPACE": f"tradeos-test-{SESSION_TAG}",
        "TRADEOS_SECRET_KEY": SECRET_KEY,
        "TRADEOS_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def servers_env(database_url: str, server_urls: tuple[str, str]) -> dict[str, str]:
    """Set TRADEOS_DATABASE_URL and TRADEOS_REDIS_URL for the whole session."""
    os.environ["TRADEOS_DATABASE_URL"] = database_url
    os.environ["TRADEOS_REDIS_URL"] = server_urls[1]
    get_settings.cache_clear()
    return {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": server_urls[1]}


TABLES = (
    "sync_rejects, sync_conflicts, product_history, stock, order_items, orders, warehouses, "
    "products, product_groups, sync_requests, sync_logs, sync_state, integration_logs, "
    "api_tokens, integrations"
)


@pytest.fixture
def db(servers_env: dict[str, str]) -> Iterator[str]:
    """An empty database (every table truncated) for this test; yields its URL."""
    from tradeos_pipelines.storage.database import get_engine

    engine = get_engine(servers_env["TRADEOS_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    yield servers_env["TRADEOS_DATABASE_URL"]


@pytest.fixture
def session(db: str) -> Iterator[Session]:
    """A SQLAlchemy session on the test database (committed by the test when it wants)."""
    from tradeos_pipelines.storage.database import get_engine

    with Session(get_engine(db), expire_on_commit=False) as s:
        yield s


@pytest.fixture
def redis_url(servers_env: dict[str, str]) -> Iterator[str]:
    """The Redis URL, with this session's namespace emptied before the test."""
    url = servers_env["TRADEOS_REDIS_URL"]
    client = redis.Redis.from_url(url)
    namespace = os.environ["TRADEOS_REDIS_NAMESPACE"]
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        client.delete(key)
    client.close()
    yield url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def admin_token() -> str:
    return ADMIN_TOKEN


@pytest.fixture
def make_integration(db: str) -> Callable[..., str]:
    """Insert an integration (credentials encrypted as the sidecar stores them); returns its id."""
    from tradeos_pipelines.storage.database import get_engine

    def _make(
        integration_id: str = "main-1c",
        *,
        base_url: str = "http://127.0.0.1:8080/trade",
        api_key: str | None = "test-key",
        username: str | None = None,
        password: str | None = None,
        webhook_secret: str | None = "webhook-secret",
        **fields: Any,
    ) -> str:
        if username is not None:
            auth_type, credentials = "basic", {"username": username, "password": password or ""}
        else:
            auth_type, credentials = "api_key", {"api_key": api_key}
        # A 1C the test takes down fails within ~2 s, as a real outage would after 120 s;
        # tests of the retry budget give their own.
        fields.setdefault("retry_budget_seconds", 2)
        row = Integration(
            id=integration_id,
            name=fields.pop("name", integration_id),
            base_url=base_url,
            auth_type=auth_type,
            credentials_encrypted=encrypt_json(credentials),
            webhook_secret_encrypted=encrypt_text(webhook_secret) if webhook_secret else None,
            **fields,
        )
        with Session(get_engine(db)) as s:
            s.add(row)
            s.commit()
        return integration_id

    return _make

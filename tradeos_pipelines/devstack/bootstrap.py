"""What the dev stack prepares before it starts any service.

Everything here is idempotent, so ``tradeos dev`` can be stopped and started at will: the
data folder (``TRADEOS_DATA_DIR``, default ``.tradeos/``) keeps the embedded servers' data, the
dev secret key, the admin token and the Dagster home between runs.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tradeos_pipelines.core.secrets import encrypt_json, new_secret_key
from tradeos_pipelines.core.settings import PROJECT_ROOT, Settings
from tradeos_pipelines.storage.tables import Integration

DEMO_INTEGRATION_ID = "demo-1c"
DEMO_ODATA_INTEGRATION_ID = "demo-odata"
DEMO_ODATA_USER, DEMO_ODATA_PASSWORD = "Администратор", "demo"
# The price type "Розничная" of the OData emulator's infobase (seed 1 makes the same keys
# every time; tests/stack/test_demo_odata.py checks it against a running emulator).
DEMO_ODATA_PRICE_TYPE = "61b86622-b67c-11b0-944a-91b72265b1f5"
DEMO_API_KEY = "demo-key"
EMBEDDED_DATABASE = "tradeos"


class StackError(RuntimeError):
    """The dev stack cannot start; the message says what to fix."""


@dataclass(frozen=True)
class DataDir:
    """The folders and files the dev stack keeps under ``TRADEOS_DATA_DIR``."""

    root: Path

    @property
    def postgres(self) -> Path:
        """Embedded PostgreSQL's data folder."""
        return self.root / "postgres"

    @property
    def redis(self) -> Path:
        """Embedded Redis's data folder."""
        return self.root / "redis"

    @property
    def logs(self) -> Path:
        """One log file per service."""
        return self.root / "logs"

    @property
    def dagster_home(self) -> Path:
        """DAGSTER_HOME of the dev stack (a copy of the project's dagster.yaml)."""
        return self.root / "dagster_home"

    @property
    def secret_key_file(self) -> Path:
        """The dev-only Fernet key, generated once."""
        return self.root / "secret.key"

    @property
    def stack_env_file(self) -> Path:
        """While ``tradeos dev`` runs: its database and Redis URLs, for ``tradeos token``."""
        return self.root / "stack.env"

    @property
    def admin_token_file(self) -> Path:
        """The dev admin token, generated once."""
        return self.root / "admin.token"

    def create(self) -> None:
        """Make the folder (private: it holds keys)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)  # others may traverse (embedded PostgreSQL's account) but not list
        self.logs.mkdir(exist_ok=True)
        self.logs.chmod(0o700)


def _read_or_create(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value, False
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value, True


STACK_ENV_KEYS = ("TRADEOS_DATABASE_URL", "TRADEOS_REDIS_URL", "TRADEOS_REDIS_NAMESPACE")


def write_stack_env(data: DataDir, env: dict[str, str]) -> None:
    """Record the running stack's server URLs (0600: they hold the generated passwords)."""
    lines = [f"{key}={env[key]}" for key in STACK_ENV_KEYS if env.get(key)]
    fd = os.open(data.stack_env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def read_stack_env(data_root: Path) -> dict[str, str]:
    """What :func:`write_stack_env` recorded in ``data_root`` (empty when no stack runs)."""
    try:
        text = (data_root / "stack.env").read_text()
    except FileNotFoundError:
        return {}
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {key: value for key, _, value in pairs if key in STACK_ENV_KEYS}


def dev_secret_key(settings: Settings, data: DataDir) -> str:
    """TRADEOS_SECRET_KEY, or (development only) a key generated once into secret.key."""
    if settings.secret_key:
        return settings.secret_key
    if settings.env == "production":
        raise StackError("TRADEOS_SECRET_KEY is required when TRADEOS_ENV=production")
    value, _ = _read_or_create(data.secret_key_file, new_secret_key)
    return value


def admin_token(settings: Settings, data: DataDir) -> tuple[str, bool]:
    """(token, from_environment): TRADEOS_ADMIN_TOKEN, or one generated once into admin.token."""
    if settings.admin_token:
        return settings.admin_token, True
    value, _ = _read_or_create(data.admin_token_file, lambda: "dev-" + secrets.token_urlsafe(24))
    return value, False


def check_database(url: str) -> None:
    """Fail with one clear line when TRADEOS_DATABASE_URL's server cannot be used."""
    parsed = make_url(url)
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StackError(
            f"TRADEOS_DATABASE_URL: cannot connect to PostgreSQL at {parsed.host}:{parsed.port} "
            f"(database {parsed.database!r}): {reason}"
        ) from None
    finally:
        engine.dispose()


def check_redis(url: str) -> None:
    """Fail with one clear line when TRADEOS_REDIS_URL's server does not answer."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StackError(f"TRADEOS_REDIS_URL: Redis does not answer PING: {exc}") from None
    finally:
        client.close()


def ensure_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_url`` if missing; return its URL.

    Connects to the database ``server_url`` names (CREATE DATABASE works from any of them), so
    a user who owns only their database but may create others needs no access to ``postgres``.
    """
    url = make_url(server_url)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as exc:
        raise StackError(
            f"cannot create the database {name!r} on {url.host}:{url.port}: "
            f"{str(exc.orig or exc).strip().splitlines()[0]} (create it yourself, or set "
            "TRADEOS_DAGSTER_DATABASE_URL to a database the user may use)"
        ) from None
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def dagster_database_url(database_url: str) -> str:
    """TRADEOS_DAGSTER_DATABASE_URL if set, else ``<db>_dagster`` beside the app database."""
    explicit = os.environ.get("TRADEOS_DAGSTER_DATABASE_URL")
    if explicit:
        return explicit
    name = f"{make_url(database_url).database}_dagster"
    return ensure_database(database_url, name)


def prepare_dagster_home(data: DataDir) -> Path:
    """DAGSTER_HOME with a fresh copy of the project's dagster.yaml (taken on every start)."""
    data.dagster_home.mkdir(parents=True, exist_ok=True)
    source = PROJECT_ROOT / "dagster.yaml"
    if source.exists():
        shutil.copyfile(source, data.dagster_home / "dagster.yaml")
    return data.dagster_home


def ensure_demo_odata_integration(database_url: str, base_url: str, secret_key: str) -> None:
    """Create or refresh ``demo-odata``: the bundled OData emulator, as a stock УТ 11.5 is
    reached (Basic auth as a Cyrillic 1C user, the retail price type)."""
    credentials = encrypt_json(
        {"username": DEMO_ODATA_USER, "password": DEMO_ODATA_PASSWORD}, key=secret_key
    )
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            row = session.get(Integration, DEMO_ODATA_INTEGRATION_ID)
            if row is None:
                row = Integration(
                    id=DEMO_ODATA_INTEGRATION_ID,
                    name="Демо 1С по OData (встроенный эмулятор)",
                    options={"price_type_key": DEMO_ODATA_PRICE_TYPE, "price_register": "11.5"},
                )
                session.add(row)
            row.base_url = base_url
            row.auth_type = "basic"
            row.protocol = "odata"
            row.credentials_encrypted = credentials
            session.commit()
    finally:
        engine.dispose()


def ensure_demo_integration(database_url: str, base_url: str, secret_key: str) -> None:
    """Create or refresh the ``demo-1c`` integration pointing at the bundled emulator.

    Refreshed on every start because the emulator's port and the secret key may have changed;
    other fields a user edited (enabled, page size, …) are left as they are.
    """
    credentials = encrypt_json({"api_key": DEMO_API_KEY}, key=secret_key)
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            row = session.scalars(
                select(Integration).where(Integration.id == DEMO_INTEGRATION_ID)
            ).first()
            if row is None:
                session.add(
                    Integration(
                        id=DEMO_INTEGRATION_ID,
                        name="Демо 1С (встроенный эмулятор)",
                        base_url=base_url,
                        auth_type="api_key",
                        credentials_encrypted=credentials,
                    )
                )
            else:
                row.base_url = base_url
                row.auth_type = "api_key"
                row.credentials_encrypted = credentials
            session.commit()
    finally:
        engine.dispose()

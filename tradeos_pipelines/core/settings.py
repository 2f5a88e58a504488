"""One settings object for every process: Dagster code, the sidecar, the dev stack.

Every variable has the prefix ``TRADEOS_`` and may also come from a ``.env`` file in the
working directory. A missing or malformed value stops start-up with one line that names it
(see :func:`load_settings`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names it."""


def normalize_database_url(url: str) -> str:
    """Return a SQLAlchemy URL that uses psycopg2.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` URL to psycopg 3, which this project does not
    install; users paste URLs in the libpq form, so the driver is added here, in one place.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    """Runtime configuration (environment prefix ``TRADEOS_``)."""

    model_config = SettingsConfigDict(
        env_prefix="TRADEOS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "production"] = "development"
    # None means "start embedded servers" (only the dev stack does that; see devstack).
    database_url: str | None = None
    redis_url: str | None = None
    # Prefix of every Redis key, so several deployments (or test sessions) can share a server.
    redis_namespace: str = "tradeos"
    # Fernet key for 1C credentials and webhook secrets. No default in production.
    secret_key: str | None = None
    admin_token: str | None = None

    data_dir: Path = PROJECT_ROOT / ".tradeos"
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    ws_port: int = Field(8001, ge=1, le=65535)
    dagster_port: int = Field(3000, ge=1, le=65535)
    emulator_port: int = Field(8080, ge=1, le=65535)
    odata_emulator_port: int = Field(8081, ge=1, le=65535)
    # Where the sidecar reaches Dagster's webserver (GraphQL) to launch runs.
    dagster_url: str = "http://127.0.0.1:3000"
    # What the dashboard is told (GET /api/v1/config) and what its CSP allows: the WebSocket
    # relay as browsers reach it (default: the page's host on ws_port) and the Dagster UI
    # (default: dagster_url). Set them when a proxy publishes either under another address.
    public_ws_url: str | None = None
    public_dagster_url: str | None = None
    # Where operators open the dashboard; Dagster materializations link to their operation
    # there (default: http://api_host:api_port/dashboard/).
    public_dashboard_url: str | None = None
    # Host names the Dagster UI answers besides loopback (DNS rebinding guard), e.g. the
    # compose service name or the name a proxy publishes it under.
    dagster_allowed_hosts: list[str] = Field(default_factory=list)
    # Require an admin API token for the Dagster UI (set it when the UI is published beyond
    # loopback); the sidecar then sends dagster_token to Dagster's GraphQL.
    dagster_require_token: bool = False
    dagster_token: str | None = None
    cors_origins: list[str] = Field(default_factory=list)

    schedule_timezone: str = "Europe/Moscow"
    # First day of the orders' daily partitions (YYYY-MM-DD). Unset: the first day of the
    # previous month, so the Dagster UI lists a month or two of days, not years of "Missing"
    # ones. Set it earlier to backfill older days; later keys stay the same either way.
    orders_partitions_start: date | None = None
    change_sensor_interval_seconds: int = Field(60, ge=5)
    request_sensor_interval_seconds: int = Field(5, ge=1)
    # Dagster schedule crons (in schedule_timezone); tests set "* * * * *" to see a tick soon.
    nomenclature_schedule_cron: str = "0 * * * *"
    stock_orders_schedule_cron: str = "*/15 * * * *"
    # Consecutive failed runs of one integration and entity that raise an `alert` event.
    alert_failure_streak: int = Field(3, ge=1)
    # 1C stamps a transaction with its start time, so a resumed read goes back this far.
    overlap_seconds: int = Field(300, ge=0)
    reject_ratio: float = Field(0.05, ge=0, le=1)
    # The reject ratio judges only a read of at least this many rows: one bad row among the
    # three 1C changed is a poison row to set aside, not a sign that 1C sends garbage.
    reject_min_rows: int = Field(20, ge=0)
    event_stream_maxlen: int = Field(10_000, ge=100)
    breaker_failure_threshold: int = Field(5, ge=1)
    # A run that failed on a transient error (1C unavailable past the retry budget, circuit
    # open, PostgreSQL gone) is tried again this many times, waiting
    # run_retry_delay_seconds · 2ⁿ (or until the open circuit lets a probe through).
    run_retries: int = Field(3, ge=0, le=20)
    run_retry_delay_seconds: float = Field(60.0, ge=0)
    breaker_cooldown_seconds: float = Field(30.0, gt=0)
    health_cache_ttl_seconds: int = Field(15, ge=1)
    webhook_max_skew_seconds: int = Field(300, ge=1)
    # Sidecar WebSocket relay (helper D): frames queued per client before a slow client is
    # closed with 1013, and the interval of the application heartbeat.
    ws_send_queue_size: int = Field(1000, ge=10)
    ws_heartbeat_seconds: float = Field(20.0, gt=0)
    # How often the sidecar's run watcher polls the Dagster instance (live run.* events).
    run_watcher_interval_seconds: float = Field(0.5, gt=0, le=1)
    # Alert rules of the sync_health_alerts sensor: an entity with no successful sync for
    # this many times its schedule's interval; open conflicts older than this many hours.
    alert_stale_factor: float = Field(3.0, gt=0)
    alert_conflict_hours: float = Field(24.0, gt=0)
    # Alert channels (each on when its required fields are set; see docs/alerts.md).
    alert_webhook_url: str | None = None
    alert_webhook_secret: str | None = None
    alert_telegram_bot_token: str | None = None
    alert_telegram_chat_id: str | None = None
    alert_telegram_api_url: str = "https://api.telegram.org"
    alert_smtp_host: str | None = None
    alert_smtp_port: int = Field(25, ge=1, le=65535)
    alert_smtp_username: str | None = None
    alert_smtp_password: str | None = None
    alert_smtp_security: Literal["none", "starttls", "ssl"] = "none"
    alert_email_from: str | None = None
    # Comma-separated addresses.
    alert_email_to: str | None = None
    # Messages per minute per channel at most; retries of one message before it is given up.
    alert_rate_per_minute: int = Field(20, ge=1)
    alert_retry_attempts: int = Field(5, ge=1)
    alert_retry_base_seconds: float = Field(2.0, gt=0)
    # /metrics answers from a cache this old at most (a scrape runs a few aggregate queries).
    metrics_cache_seconds: float = Field(5.0, ge=0)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql", "postgres://")):
            raise ValueError("must be a PostgreSQL URL such as postgresql://user@host:5432/db")
        return normalize_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a Redis URL such as redis://127.0.0.1:6379/0")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        from cryptography.fernet import Fernet

        try:
            Fernet(value.encode())
        except ValueError as exc:
            raise ValueError(
                "must be a Fernet key (32 url-safe base64 bytes); make one with "
                "`tradeos secret-key`"
            ) from exc
        return value

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.env == "production":
            for name in ("database_url", "redis_url", "secret_key"):
                if getattr(self, name) is None:
                    raise ValueError(
                        f"TRADEOS_{name.upper()} is required when TRADEOS_ENV=production"
                    )
        return self

    def require_database_url(self) -> str:
        """The database URL, or a clear error when the stack was not given one."""
        if self.database_url is None:
            raise SettingsError(
                "TRADEOS_DATABASE_URL is not set (start the stack with `tradeos dev`, which "
                "starts an embedded PostgreSQL, or point it at a server)"
            )
        return self.database_url

    def require_redis_url(self) -> str:
        """The Redis URL, or a clear error when the stack was not given one."""
        if self.redis_url is None:
            raise SettingsError(
                "TRADEOS_REDIS_URL is not set (start the stack with `tradeos dev`, which starts "
                "an embedded Redis, or point it at a server)"
            )
        return self.redis_url

    def dashboard_url(self) -> str:
        """The dashboard as operators reach it (no trailing slash)."""
        if self.public_dashboard_url:
            return self.public_dashboard_url.rstrip("/")
        return f"http://{self.api_host}:{self.api_port}/dashboard"

    def orders_partitions_start_date(self, today: date) -> date:
        """The first day of the orders' daily partitions (see ``orders_partitions_start``)."""
        if self.orders_partitions_start is not None:
            return self.orders_partitions_start
        first_of_month = today.replace(day=1)
        return (first_of_month - timedelta(days=1)).replace(day=1)

    def require_secret_key(self) -> str:
        """The Fernet key that encrypts 1C credentials."""
        if self.secret_key is None:
            raise SettingsError(
                "TRADEOS_SECRET_KEY is not set (make one with `tradeos secret-key`)"
            )
        return self.secret_key


def load_settings() -> Settings:
    """Read settings from the environment, turning validation errors into one clear line."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            name = f"TRADEOS_{field.upper()}" if err["loc"] else "settings"
            problems.append(f"{name}: {err['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return load_settings()


def today_in_schedule_timezone() -> date:
    """Today's date where the schedules run (``TRADEOS_SCHEDULE_TIMEZONE``)."""
    return datetime.now(ZoneInfo(get_settings().schedule_timezone)).date()

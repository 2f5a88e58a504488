"""Integration bodies: create, update, and the public view that never shows a secret."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.core.slugs import SLUG_PATTERN
from tradeos_pipelines.core.credentials import credential_problem

MASK = "***"

AuthType = Literal["api_key", "basic"]
ConflictPolicy = Literal["onec_wins", "tradeos_wins", "manual"]
Secret = Annotated[str, Field(min_length=1, max_length=500)]


def _check_base_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL of the 1C publication, e.g. http://1c.local/trade")
    if parts.username or parts.password:
        raise ValueError("must not contain credentials; use api_key or username/password")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value.strip().rstrip("/")


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Europe/Moscow"
        ) from None
    return value


class _IntegrationFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL text cannot hold NUL; refused here with the field's name, not a 500 later.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL (\\u0000) characters")
        return value

    @field_validator("api_key", "username", "password", check_fields=False)
    @classmethod
    def _credentials(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (problem := credential_problem(str(info.field_name), value)):
            raise ValueError(problem)
        return value

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_base_url(value)

    @field_validator("timezone", check_fields=False)
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)


class IntegrationCreate(_IntegrationFields):
    """A new 1C infobase. ``id`` defaults to a slug of ``name`` (Cyrillic transliterated)."""

    id: Annotated[str, Field(pattern=SLUG_PATTERN)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)]
    base_url: Annotated[str, Field(max_length=500)]
    auth_type: AuthType
    api_key: Secret | None = None
    username: Secret | None = None
    password: Secret | None = None
    webhook_secret: Annotated[str, Field(min_length=16, max_length=200)] | None = None
    enabled: bool = True
    timezone: str = "Europe/Moscow"
    conflict_policy: ConflictPolicy = "onec_wins"
    cache_ttl_seconds: Annotated[int, Field(ge=0, le=86_400)] = 300
    page_size: Annotated[int, Field(ge=1, le=1000)] = 1000
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0


class IntegrationUpdate(_IntegrationFields):
    """A partial change; credentials given here replace the stored ones."""

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    base_url: Annotated[str, Field(max_length=500)] | None = None
    auth_type: AuthType | None = None
    api_key: Secret | None = None
    username: Secret | None = None
    password: Secret | None = None
    webhook_secret: Annotated[str, Field(min_length=16, max_length=200)] | None = None
    enabled: bool | None = None
    timezone: str | None = None
    conflict_policy: ConflictPolicy | None = None
    cache_ttl_seconds: Annotated[int, Field(ge=0, le=86_400)] | None = None
    page_size: Annotated[int, Field(ge=1, le=1000)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] | None = None


class IntegrationPublic(BaseModel):
    """An integration as the API shows it: secrets are ``"***"``."""

    id: str
    name: str
    base_url: str
    auth_type: AuthType
    api_key: str | None = Field(None, description='"***" when set; never the value')
    username: str | None = None
    password: str | None = Field(None, description='"***" when set; never the value')
    webhook_secret: str | None = Field(
        None, description='"***" (the value is shown once, in the answer to create)'
    )
    webhook_path: str
    enabled: bool
    timezone: str
    conflict_policy: ConflictPolicy
    cache_ttl_seconds: int
    page_size: int
    timeout_seconds: float
    created_at: datetime
    updated_at: datetime


class IntegrationsPublic(BaseModel):
    data: list[IntegrationPublic]
    count: int


class ConnectionTest(BaseModel):
    """Result of ``test-connection``: 1C's version on success, the reason otherwise."""

    ok: bool
    latency_ms: float
    version: str | None = None
    error: str | None = None

"""Integration bodies: create, update, and the public view that never shows a secret."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.core.slugs import SLUG_PATTERN
from api.core.urls import BASE_URL_PATTERN
from api.schemas.json_types import JSON_NUMBER, JsonBool
from tradeos_pipelines.core.credentials import credential_problem

MASK = "***"

AuthType = Literal["api_key", "basic"]
Protocol = Literal["http_service", "odata"]
PriceRegister = Literal["11.5", "11.4"]
ConflictPolicy = Literal["onec_wins", "tradeos_wins", "manual"]
Secret = Annotated[str, Field(min_length=1, max_length=500)]


def _check_base_url(value: str) -> str:
    try:
        parts = urlsplit(value.strip())
    except ValueError as exc:  # e.g. an invalid bracketed IPv6 address
        raise ValueError(f"is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL of the 1C publication, e.g. http://1c.local/trade")
    if parts.username or parts.password:
        raise ValueError("must not contain credentials; use api_key or username/password")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    if not re.fullmatch(BASE_URL_PATTERN, value.strip()):
        raise ValueError(
            "must be http(s)://HOST[:PORT][/PATH] with a host name, IPv4 or IPv6 address "
            "and a path of letters, digits and ._~%/-"
        )
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

    @field_validator("api_key", "username", "password", "webhook_secret", check_fields=False)
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


class IntegrationOptions(BaseModel):
    """Settings of the OData protocol (``protocol: "odata"``)."""

    model_config = ConfigDict(extra="forbid")

    price_type_key: UUID | None = Field(
        None,
        description="Ref_Key of the price type (Catalog_ВидыЦен) whose prices TradeOS reads; "
        "test-connection lists them. Without it goods come without a price.",
    )
    price_register: PriceRegister = Field(
        "11.5",
        description="11.5: InformationRegister_ЦеныНоменклатуры25 (УТ 11.5, ERP 2.5); "
        "11.4: InformationRegister_ЦеныНоменклатуры",
    )
    customer_key: UUID | None = Field(
        None,
        description="Ref_Key of a Catalog_Контрагенты row used for exported orders whose "
        "customer 1C does not know (by ИНН, then by name)",
    )


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
    enabled: JsonBool = True
    timezone: str = "Europe/Moscow"
    conflict_policy: ConflictPolicy = "onec_wins"
    cache_ttl_seconds: Annotated[int, Field(ge=0, le=86_400), JSON_NUMBER] = 300
    page_size: Annotated[int, Field(ge=1, le=1000), JSON_NUMBER] = 1000
    timeout_seconds: Annotated[float, Field(gt=0, le=600), JSON_NUMBER] = 30.0
    retry_budget_seconds: Annotated[float, Field(ge=0, le=3600), JSON_NUMBER] = Field(
        120.0,
        description="How long one call to 1C keeps retrying through 5xx, 429 and dropped "
        "connections (0: one attempt).",
    )
    protocol: Protocol = "http_service"
    options: IntegrationOptions | None = None


class IntegrationUpdate(_IntegrationFields):
    """A partial change; credentials given here replace the stored ones."""

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    base_url: Annotated[str, Field(max_length=500)] | None = None
    auth_type: AuthType | None = None
    api_key: Secret | None = None
    username: Secret | None = None
    password: Secret | None = None
    webhook_secret: Annotated[str, Field(min_length=16, max_length=200)] | None = None
    enabled: JsonBool | None = None
    timezone: str | None = None
    conflict_policy: ConflictPolicy | None = None
    cache_ttl_seconds: Annotated[int, Field(ge=0, le=86_400), JSON_NUMBER] | None = None
    page_size: Annotated[int, Field(ge=1, le=1000), JSON_NUMBER] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=600), JSON_NUMBER] | None = None
    retry_budget_seconds: Annotated[float, Field(ge=0, le=3600), JSON_NUMBER] | None = None
    protocol: Protocol | None = None
    options: IntegrationOptions | None = None


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
    retry_budget_seconds: float
    protocol: Protocol
    options: IntegrationOptions | None = Field(
        None, description="the OData settings; null for the HTTP service"
    )
    created_at: datetime
    updated_at: datetime


class IntegrationsPublic(BaseModel):
    data: list[IntegrationPublic]
    count: int


class ConnectionFinding(BaseModel):
    """One problem test-connection found on the 1C side and what the 1C administrator does."""

    object: str = Field(description="the 1C object, e.g. Catalog_Номенклатура")
    problem: Literal["not_published", "not_readable", "field_missing", "error"]
    message: str = Field(description="what 1C said, or what is missing")
    fix: str = Field(description="what to do in 1C")


class PriceType(BaseModel):
    """A price type of the 1C (Catalog_ВидыЦен), to choose ``options.price_type_key``."""

    key: UUID
    name: str


class ConnectionTest(BaseModel):
    """Result of ``test-connection``: 1C's version on success, the reason otherwise.

    For OData also the required objects that are not published or not readable (each with
    what to do in 1C) and the price types found.
    """

    ok: bool
    latency_ms: float
    version: str | None = None
    error: str | None = None
    protocol: Protocol = "http_service"
    findings: list[ConnectionFinding] = Field(default_factory=list)
    price_types: list[PriceType] = Field(default_factory=list)

"""One 1C infobase as every layer sees it: its address, options and decrypted credentials.

Storage decrypts an ``integrations`` row into an :class:`IntegrationConfig`; the 1C protocols
connect with it without knowing where it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# How TradeOS talks to a 1C: the /hs/api HTTP service, or the platform's standard OData.
PROTOCOLS = ("http_service", "odata")
# OData: the price register of УТ 11.5 (ЦеныНоменклатуры25) or of УТ 11.4 (ЦеныНоменклатуры).
PRICE_REGISTERS = {"11.5": "ЦеныНоменклатуры25", "11.4": "ЦеныНоменклатуры"}


class IntegrationNotFound(LookupError):
    """No integration has this id."""


@dataclass(frozen=True)
class IntegrationConfig:
    """Everything needed to talk to one 1C infobase. ``repr`` hides the secrets."""

    id: str
    name: str
    base_url: str
    auth_type: str
    enabled: bool
    timezone: str
    conflict_policy: str
    cache_ttl_seconds: int
    page_size: int
    timeout_seconds: float
    # How long one call to 1C keeps retrying through 5xx, 429 and dropped connections.
    retry_budget_seconds: float = 120.0
    protocol: str = "http_service"
    # The protocol's settings; OData: ``price_type_key`` (a GUID) and ``price_register``.
    options: Mapping[str, Any] = field(default_factory=dict)
    api_key: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)

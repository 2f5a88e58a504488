"""One 1C infobase as every layer sees it: its address, options and decrypted credentials.

Storage decrypts an ``integrations`` row into an :class:`IntegrationConfig`; the 1C protocols
connect with it without knowing where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    api_key: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)

"""The 1C change webhook: signature, freshness and replay checks, then a queued sync.

1C signs the raw body: ``X-TradeOS-Signature: sha256=<hex HMAC-SHA256(body, webhook secret)>``.
The body is ``{"entities": [...], "sent_at": ISO 8601 or unix seconds, "ids": [...]}``; a
``sent_at`` further than ``webhook_max_skew_seconds`` from now is refused, and so is a body
already accepted within that window (a replay).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from api.core.deps import in_session
from api.core.errors import Conflict, FieldErrors, Unauthorized, validation_items
from api.core.runtime import Runtime
from api.schemas.sync import SyncLaunched
from api.services import integration_health
from tradeos_pipelines.core.vocabulary import Entity
from tradeos_pipelines.launch import request_sync
from tradeos_pipelines.sources.common.cache import invalidate
from tradeos_pipelines.storage.integrations import load_integration

SIGNATURE_HEADER = "X-TradeOS-Signature"


class WebhookRejected(Unauthorized):
    """Bad signature or stale timestamp: 401, nothing recorded."""


class WebhookNotification(BaseModel):
    """What 1C says changed."""

    model_config = ConfigDict(extra="ignore")

    entities: Annotated[list[Entity], Field(min_length=1)]
    sent_at: datetime
    ids: list[str] = Field(default_factory=list, max_length=10_000)

    @field_validator("sent_at", mode="before")
    @classmethod
    def _unix_or_iso(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return datetime.fromtimestamp(value, UTC)
            except (OverflowError, OSError, ValueError):
                raise ValueError("unix seconds out of range (years 1..9999)") from None
        return value

    @field_validator("sent_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone (e.g. 2026-11-27T10:15:00+03:00) or be unix")
        return value

    @field_validator("entities")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def sign(secret: str, body: bytes) -> str:
    """The header value 1C must send for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> None:
    """Raise :class:`WebhookRejected` unless ``header`` is the body's HMAC (constant time)."""
    if not header:
        raise WebhookRejected(f"missing {SIGNATURE_HEADER} header")
    scheme, _, digest = header.strip().partition("=")
    if scheme.lower() != "sha256" or not digest:
        raise WebhookRejected(f"{SIGNATURE_HEADER} must be sha256=<hex HMAC-SHA256 of the body>")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, digest.strip().lower()):
        raise WebhookRejected("signature does not match the body and the integration's secret")


def parse_notification(body: bytes, *, max_skew_seconds: int, now: datetime) -> WebhookNotification:
    """The validated body; 422 naming the field, or :class:`WebhookRejected` when stale."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FieldErrors([("body", "not valid JSON")]) from None
    if not isinstance(payload, dict):
        raise FieldErrors([("body", "must be a JSON object")])
    try:
        notification = WebhookNotification.model_validate(payload)
    except ValidationError as exc:
        raise FieldErrors(
            [(item["field"], item["msg"]) for item in validation_items(list(exc.errors()))]
        ) from None
    skew = abs((now - notification.sent_at).total_seconds())
    if skew > max_skew_seconds:
        raise WebhookRejected(
            f"sent_at is {int(skew)} s away from the server clock (limit {max_skew_seconds} s): "
            "stale, replayed or a wrong 1C clock"
        )
    return notification


def replay_key(namespace: str, integration_id: str, signature: str) -> str:
    """Redis key remembering an accepted body (by its signature) for the skew window."""
    digest = signature.partition("=")[2].strip().lower()
    return f"{namespace}:webhook-seen:{integration_id}:{digest}"


async def receive(
    runtime: Runtime, integration_id: str, body: bytes, signature: str | None
) -> SyncLaunched:
    """Check a notification (signature, freshness, replay) and queue the sync it asks for.

    Raises :class:`WebhookRejected` (401), :class:`~api.core.errors.Conflict` (409: disabled
    or replayed) or ``IntegrationNotFound`` (404); nothing is queued then.
    """
    settings = runtime.settings
    config = await in_session(lambda session: load_integration(session, integration_id))
    if not config.webhook_secret:
        raise WebhookRejected("this integration has no webhook secret; set one with PATCH")
    verify_signature(config.webhook_secret, body, signature)
    notification = parse_notification(
        body, max_skew_seconds=settings.webhook_max_skew_seconds, now=datetime.now(UTC)
    )
    if not config.enabled:
        raise Conflict(f"integration {integration_id!r} is disabled")
    # A body is accepted once: the same signed body again within the window is a replay.
    seen = replay_key(settings.redis_namespace, integration_id, signature or "")
    if not await runtime.redis.set(seen, 1, nx=True, ex=2 * settings.webhook_max_skew_seconds):
        raise Conflict("this notification was already received")
    try:
        launched = await run_in_threadpool(
            request_sync, integration_id, list(notification.entities), full=False, source="webhook"
        )
    except Exception:
        await runtime.redis.delete(seen)  # not taken: let 1C retry the same body
        raise
    for entity in notification.entities:
        await invalidate(runtime.redis, integration_id, entity, namespace=settings.redis_namespace)
    await integration_health.forget(runtime.redis, integration_id)  # now shows it waiting
    return SyncLaunched(run_ids=launched.run_ids, request_id=launched.request_id)

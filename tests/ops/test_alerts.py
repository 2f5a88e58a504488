"""Alerts leave the building: a real sidecar delivers to a local Telegram Bot API stand-in, a
local webhook receiver and an aiosmtpd SMTP server; the events come from the real breaker and
the real event bus."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import update

from tests.api.conftest import Sidecar, start_sidecar
from tests.ops.receivers import HttpReceiver, MailBox, start_http_receiver, start_smtp_server
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.devstack.embedded import find_free_port
from tradeos_pipelines.event_bus import RedisEventBus
from tradeos_pipelines.sources.common.breaker import CircuitBreaker

BOT_TOKEN = "123456:test-bot-token"
CHAT_ID = "-100500"
WEBHOOK_SECRET = "alert-webhook-secret-0123456789"


@dataclass
class Alerting:
    sidecar: Sidecar
    telegram: HttpReceiver
    webhook: HttpReceiver
    mail: MailBox

    def channels(self, admin_token: str) -> dict[str, dict]:
        response = httpx.get(
            f"{self.sidecar.base_url}/api/v1/alerts/channels",
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert response.status_code == 200, response.text
        return {c["channel"]: c for c in response.json()["data"]}


@pytest.fixture
def alerting(db, redis_url) -> Iterator[Alerting]:
    """A sidecar of its own with all three channels configured (the session's has none)."""
    telegram, webhook = start_http_receiver(), start_http_receiver()
    smtp_port = find_free_port()
    controller, mail = start_smtp_server(smtp_port)
    env = {
        "TRADEOS_ALERT_WEBHOOK_URL": webhook.url + "/hooks/tradeos",
        "TRADEOS_ALERT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TRADEOS_ALERT_TELEGRAM_API_URL": telegram.url,
        "TRADEOS_ALERT_TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TRADEOS_ALERT_TELEGRAM_CHAT_ID": CHAT_ID,
        "TRADEOS_ALERT_SMTP_HOST": "127.0.0.1",
        "TRADEOS_ALERT_SMTP_PORT": str(smtp_port),
        "TRADEOS_ALERT_EMAIL_FROM": "tradeos@example.ru",
        "TRADEOS_ALERT_EMAIL_TO": "ops@example.ru, Дежурный <duty@example.ru>",
        "TRADEOS_ALERT_RETRY_BASE_SECONDS": "0.05",
        "TRADEOS_ALERT_RATE_PER_MINUTE": "600",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        sidecar = start_sidecar()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
    yield Alerting(sidecar, telegram, webhook, mail)
    sidecar.stop()
    telegram.stop()
    webhook.stop()
    controller.stop()


def run_breaker(redis_url: str, steps: list[str]) -> None:
    """Drive the real circuit breaker of ``main-1c`` (threshold 2) with a clock of our own."""

    async def drive() -> None:
        client = aioredis.Redis.from_url(redis_url)
        now = [1_800_000_000.0]
        breaker = CircuitBreaker(
            client, "main-1c", failure_threshold=2, cooldown_seconds=30, clock=lambda: now[0]
        )
        for step in steps:
            if step == "fail":
                await breaker.record_failure("ConnectError: 1C не отвечает")
            elif step == "probe":
                now[0] += 31
                assert await breaker.admit() is True
            elif step == "ok":
                await breaker.record_success()
        await client.aclose()

    asyncio.run(drive())


def test_an_open_breaker_is_one_message_per_channel_and_its_recovery_one_more(
    alerting, redis_url, admin_token
):
    # Opens, a failed probe re-opens it (the same incident), a good probe closes it.
    run_breaker(redis_url, ["fail", "fail", "probe", "fail", "probe", "ok"])
    telegram = alerting.telegram.wait_for(2)
    webhook = alerting.webhook.wait_for(2)
    mail = alerting.mail.wait_for(2)
    time.sleep(0.5)  # nothing more arrives
    assert (len(alerting.telegram.requests), len(alerting.webhook.requests)) == (2, 2)
    assert len(alerting.mail.messages) == 2

    assert [r.path for r in telegram] == [f"/bot{BOT_TOKEN}/sendMessage"] * 2
    opened, recovered = (r.json() for r in telegram)
    assert opened["chat_id"] == CHAT_ID
    assert opened["text"].startswith("🔴 TradeOS «main-1c»: 1C «main-1c» не отвечает: 2 ошибок")
    assert recovered["text"].startswith(
        "✅ TradeOS «main-1c»: восстановлено. Было: 1C «main-1c» не отвечает: 2 ошибок"
    )

    for request in webhook:
        signature = hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.path == "/hooks/tradeos"
        assert request.headers["x-tradeos-signature"] == f"sha256={signature}"
    bodies = [r.json() for r in webhook]
    assert [(b["incident"], b["state"]) for b in bodies] == [
        ("circuit_open:main-1c", "open"),
        ("circuit_open:main-1c", "resolved"),
    ]
    assert bodies[1]["opened_at"] == bodies[0]["opened_at"]

    sender, recipients, raw = mail[0]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert (sender, recipients) == ("tradeos@example.ru", ["ops@example.ru", "duty@example.ru"])
    assert message["Subject"].startswith("[TradeOS] main-1c: 1C «main-1c» не отвечает")
    assert message.get_content().startswith("🔴 TradeOS «main-1c»: 1C «main-1c» не отвечает")
    second = email.message_from_bytes(mail[1][2], policy=email.policy.default)
    assert second["Subject"] == "[TradeOS] восстановлено: main-1c"

    channels = alerting.channels(admin_token)
    for name in ("webhook", "telegram", "email"):
        status = channels[name]
        assert (status["configured"], status["last_status"], status["last_error"]) == (
            True,
            "ok",
            None,
        ), name
        assert (status["delivered_total"], status["failed_total"]) == (2, 0), name
        assert status["last_incident"] == "circuit_open:main-1c"


def _streak_alert(failures: int) -> dict:
    # What the sync_failure_alerts sensor publishes.
    return {
        "integration_id": "main-1c",
        "entity": "stock",
        "severity": "error",
        "failures": failures,
        "run_id": "run-1",
        "message": f"stock sync of main-1c failed {failures} times in a row",
        "error": "1C: 1C unavailable",
    }


def test_failures_are_retried_with_backoff_and_recorded(alerting, admin_token):
    alerting.webhook.script = [(500, {}), (503, {})]
    alerting.telegram.script = [(400, {"ok": False, "description": "Bad Request: chat not found"})]
    bus = RedisEventBus.from_settings()
    bus.publish("alerts", "alert", _streak_alert(3))
    webhook = alerting.webhook.wait_for(3)
    assert len(webhook) == 3  # two failures, then delivered
    assert webhook[0].body == webhook[2].body
    time.sleep(0.3)
    assert len(alerting.telegram.requests) == 1  # a 400 is not retried
    channels = alerting.channels(admin_token)
    assert channels["webhook"]["last_status"] == "ok"
    assert channels["webhook"]["delivered_total"] == 1
    assert channels["telegram"]["last_status"] == "failed"
    assert channels["telegram"]["last_error"] == (
        "Telegram API answered HTTP 400: Bad Request: chat not found"
    )
    assert channels["telegram"]["failed_total"] == 1
    assert BOT_TOKEN not in str(channels)

    # The sensor repeats itself at 6 failures: the incident is already open, nothing is sent.
    bus.publish("alerts", "alert", _streak_alert(6))
    # Progress and other entities' successes close nothing.
    bus.publish(
        "sync_updates",
        "sync.finished",
        {"integration_id": "main-1c", "entity": "nomenclature", "status": "success"},
    )
    bus.publish(
        "sync_updates",
        "sync.finished",
        {"integration_id": "main-1c", "entity": "stock", "status": "success"},
    )
    webhook = alerting.webhook.wait_for(4)
    time.sleep(0.3)
    assert len(alerting.webhook.requests) == 4
    assert webhook[3].json()["state"] == "resolved"
    assert webhook[3].json()["incident"] == "sync_failures:main-1c:stock"
    assert len(alerting.telegram.requests) == 2


def test_messages_are_paced_by_the_rate_limit(alerting):
    bus = RedisEventBus.from_settings()
    for n in range(4):
        bus.publish(
            "alerts", "alert", {"integration_id": f"i{n}", "incident": f"x:{n}", "message": "m"}
        )
    received = alerting.webhook.wait_for(4)
    gaps = [b.at - a.at for a, b in itertools.pairwise(received)]
    assert len(received) == 4
    assert min(gaps) >= 0.09  # 600 a minute: one every 0.1 s


def test_telegram_429_is_retried_after_the_time_it_asks_for(alerting, admin_token):
    alerting.telegram.script = [
        (429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 1}})
    ]
    RedisEventBus.from_settings().publish(
        "alerts", "alert", {"integration_id": "main-1c", "incident": "t:1", "message": "m"}
    )
    first, second = alerting.telegram.wait_for(2)
    assert second.at - first.at >= 1.0
    assert alerting.channels(admin_token)["telegram"]["last_status"] == "ok"


def test_channels_route_without_configuration(api):
    body = api.get("/alerts/channels").json()
    assert body["count"] == 3
    assert [(c["channel"], c["configured"], c["last_status"]) for c in body["data"]] == [
        ("webhook", False, None),
        ("telegram", False, None),
        ("email", False, None),
    ]


def test_stale_sync_sensor_alerts_once_and_on_recovery(
    alerting, dagster_instance, make_integration, session, servers_env
):
    from dagster import build_sensor_context

    from tradeos_pipelines.defs.resources import TradeOSResource
    from tradeos_pipelines.defs.sensors.health_alerts import sync_health_alerts
    from tradeos_pipelines.storage.tables import SyncState

    now = datetime.now(UTC)
    make_integration("main-1c", created_at=now - timedelta(days=2))
    for entity in ("nomenclature", "orders"):
        session.add(SyncState(integration_id="main-1c", entity=entity, last_success_at=now))
    session.add(
        SyncState(
            integration_id="main-1c", entity="stock", last_success_at=now - timedelta(hours=2)
        )
    )
    session.commit()
    tradeos = TradeOSResource(
        database_url=servers_env["TRADEOS_DATABASE_URL"],
        redis_url=servers_env["TRADEOS_REDIS_URL"],
    )

    def tick(cursor):
        context = build_sensor_context(
            instance=dagster_instance, cursor=cursor, resources={"tradeos": tradeos}
        )
        result = sync_health_alerts(context)
        return result, context.cursor

    first, cursor = tick(None)
    assert first.skip_message == "1 open: stale_sync:main-1c:stock (1 new, 0 over)"
    second, cursor = tick(cursor)  # still stale: not announced again
    assert second.skip_message == "1 open: stale_sync:main-1c:stock (0 new, 0 over)"
    received = alerting.webhook.wait_for(1)
    assert received[0].json()["incident"] == "stale_sync:main-1c:stock"
    assert received[0].json()["message"] == (
        "stock: нет успешной синхронизации 2 ч (порог: 3 × 15 мин по расписанию)"
    )

    session.execute(
        update(SyncState).where(SyncState.entity == "stock").values(last_success_at=now)
    )
    session.commit()
    third, cursor = tick(cursor)
    assert third.skip_message == (
        "every enabled integration synced within its limits; no old conflicts"
    )
    received = alerting.webhook.wait_for(2)
    time.sleep(0.3)
    assert len(alerting.webhook.requests) == 2
    assert (received[1].json()["incident"], received[1].json()["state"]) == (
        "stale_sync:main-1c:stock",
        "resolved",
    )
    assert (
        received[1]
        .json()["text"]
        .startswith(
            "✅ TradeOS «main-1c»: восстановлено. Было: stock: нет успешной синхронизации 2 ч"
        )
    )


def test_an_alert_nothing_closes_is_sent_each_time(alerting):
    bus = RedisEventBus.from_settings()
    for _ in range(2):
        bus.publish("alerts", "alert", {"integration_id": "main-1c", "message": "проверьте 1С"})
    received = alerting.webhook.wait_for(2)
    assert [(r.json()["incident"], r.json()["state"]) for r in received] == [
        ("alert:main-1c", "open"),
        ("alert:main-1c", "open"),
    ]

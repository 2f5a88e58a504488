"""Where alerts go: an outgoing webhook (HMAC-signed), Telegram's Bot API, e-mail over SMTP.

Each channel sends one :class:`Notice` or raises :class:`DeliveryFailed`, saying whether trying
again may help (``retry``) and, for Telegram's 429, how long to wait (``retry_after``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
import orjson

from tradeos_pipelines.core.settings import Settings

SIGNATURE_HEADER = "X-TradeOS-Signature"
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Notice:
    """One message about an incident: opened or resolved."""

    incident: str
    state: str  # open | resolved
    integration_id: str | None
    entity: str | None
    severity: str
    message: str
    error: str | None
    opened_at: str
    at: str
    event_id: str

    @property
    def subject(self) -> str:
        where = self.integration_id or "TradeOS"
        if self.state == "resolved":
            return f"[TradeOS] восстановлено: {where}"
        return f"[TradeOS] {where}: {self.message}"[:200]

    @property
    def text(self) -> str:
        """The human text (Russian, as operators here read it)."""
        where = f"«{self.integration_id}»" if self.integration_id else "TradeOS"
        if self.state == "resolved":
            return f"✅ TradeOS {where}: восстановлено. Было: {self.message} (с {self.opened_at})"
        text = f"🔴 TradeOS {where}: {self.message}"
        if self.error and self.error not in self.message:
            text += f"\nОшибка: {self.error}"
        return text

    def as_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "state": self.state,
            "integration_id": self.integration_id,
            "entity": self.entity,
            "severity": self.severity,
            "message": self.message,
            "error": self.error,
            "text": self.text,
            "opened_at": self.opened_at,
            "at": self.at,
            "event_id": self.event_id,
        }


class DeliveryFailed(Exception):
    """A channel could not deliver; ``retry`` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


class Channel(Protocol):
    name: str

    async def send(self, notice: Notice) -> None: ...


def _http_failure(what: str, response: httpx.Response) -> DeliveryFailed:
    retry = response.status_code >= 500 or response.status_code in (408, 429)
    return DeliveryFailed(
        f"{what} answered HTTP {response.status_code}: {response.text[:200].strip()}",
        retry=retry,
    )


class WebhookChannel:
    """POSTs the notice as JSON, signed ``X-TradeOS-Signature: sha256=<hex HMAC of the body>``."""

    name = "webhook"

    def __init__(self, url: str, secret: str | None, http: httpx.AsyncClient) -> None:
        self.url, self.secret, self.http = url, secret, http

    async def send(self, notice: Notice) -> None:
        body = orjson.dumps(notice.as_json())
        headers = {"Content-Type": "application/json"}
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        try:
            response = await self.http.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise DeliveryFailed(f"{self.url}: {type(exc).__name__}", retry=True) from None
        if not response.is_success:
            raise _http_failure(self.url, response)


class TelegramChannel:
    """``sendMessage`` of the Bot API (its base URL is a setting, so tests run a local one)."""

    name = "telegram"

    def __init__(self, api_url: str, token: str, chat_id: str, http: httpx.AsyncClient) -> None:
        self.api_url, self.token, self.chat_id, self.http = (
            api_url.rstrip("/"),
            token,
            chat_id,
            http,
        )

    async def send(self, notice: Notice) -> None:
        url = f"{self.api_url}/bot{self.token}/sendMessage"
        payload = {"chat_id": self.chat_id, "text": notice.text, "disable_web_page_preview": True}
        try:
            response = await self.http.post(url, json=payload)
        except httpx.TransportError as exc:
            # Never the URL: it carries the bot token.
            raise DeliveryFailed(f"Telegram API: {type(exc).__name__}", retry=True) from None
        if response.status_code == 429:
            after = _retry_after(response)
            raise DeliveryFailed(
                "Telegram API: 429 Too Many Requests", retry=True, retry_after=after
            )
        if not response.is_success:
            description = _json(response).get("description") or response.text[:200]
            raise DeliveryFailed(
                f"Telegram API answered HTTP {response.status_code}: {description}",
                retry=response.status_code >= 500,
            )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    value = (_json(response).get("parameters") or {}).get("retry_after")
    return float(value) if isinstance(value, int | float) else None


class EmailChannel:
    """Plain-text e-mail over SMTP (plain, STARTTLS or SSL), sent from a worker thread."""

    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.host = settings.alert_smtp_host or ""
        self.port = settings.alert_smtp_port
        self.security = settings.alert_smtp_security
        self.username, self.password = settings.alert_smtp_username, settings.alert_smtp_password
        self.sender = settings.alert_email_from or ""
        self.recipients = [
            a.strip() for a in (settings.alert_email_to or "").split(",") if a.strip()
        ]

    async def send(self, notice: Notice) -> None:
        message = EmailMessage()
        message["Subject"] = notice.subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(notice.text)
        try:
            await asyncio.to_thread(self._send, message)
        except (smtplib.SMTPException, OSError) as exc:
            retry = not isinstance(exc, smtplib.SMTPAuthenticationError)
            raise DeliveryFailed(
                f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}", retry=retry
            ) from None

    def _send(self, message: EmailMessage) -> None:
        if self.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=TIMEOUT_S, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_S)
        with client:
            if self.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)


def configured_channel_names(settings: Settings) -> set[str]:
    """Names of the channels whose required settings are present."""
    names = set()
    if settings.alert_webhook_url:
        names.add("webhook")
    if settings.alert_telegram_bot_token and settings.alert_telegram_chat_id:
        names.add("telegram")
    if settings.alert_smtp_host and settings.alert_email_from and settings.alert_email_to:
        names.add("email")
    return names


def configured_channels(settings: Settings, http: httpx.AsyncClient) -> list[Channel]:
    """The channels whose required settings are present."""
    names = configured_channel_names(settings)
    channels: list[Channel] = []
    if "webhook" in names and settings.alert_webhook_url:
        channels.append(
            WebhookChannel(settings.alert_webhook_url, settings.alert_webhook_secret, http)
        )
    if (
        "telegram" in names
        and settings.alert_telegram_bot_token
        and settings.alert_telegram_chat_id
    ):
        channels.append(
            TelegramChannel(
                settings.alert_telegram_api_url,
                settings.alert_telegram_bot_token,
                settings.alert_telegram_chat_id,
                http,
            )
        )
    if "email" in names:
        channels.append(EmailChannel(settings))
    return channels

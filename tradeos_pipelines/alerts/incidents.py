"""Which incident an event opens or closes: the key that makes delivery one message per incident.

Alerts are raised in three places, each with its own event shape:

- the 1C client's circuit breaker: ``alert`` with ``kind: circuit_open``; it is over when the
  breaker publishes ``integration.status`` with ``state: closed``;
- the ``sync_failure_alerts`` sensor: ``alert`` with ``entity`` and ``failures`` (again every
  TRADEOS_ALERT_FAILURE_STREAK failures); over when that entity's sync finishes well;
- the ``sync_health_alerts`` sensor (:mod:`tradeos_pipelines.alerts.rules`): ``alert`` with an
  ``incident`` key, and ``alert.resolved`` with the same key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# Key prefix of alerts that no later event closes (an unknown shape).
ONE_OFF = "alert:"


@dataclass(frozen=True)
class Signal:
    """An incident opening or closing, read from one event."""

    key: str
    state: Literal["open", "resolved"]
    integration_id: str | None
    entity: str | None
    severity: str
    message: str
    error: str | None = None


def circuit_key(integration_id: str) -> str:
    return f"circuit_open:{integration_id}"


def failures_key(integration_id: str, entity: str) -> str:
    return f"sync_failures:{integration_id}:{entity}"


def interpret(channel: str, event_type: str, data: dict[str, Any]) -> Signal | None:
    """The incident signal of an event, or None for events that open or close nothing."""
    integration_id = data.get("integration_id")
    entity = data.get("entity")
    if channel == "alerts" and event_type == "alert":
        if data.get("incident"):
            key = str(data["incident"])
        elif data.get("kind") == "circuit_open" and integration_id:
            key = circuit_key(integration_id)
        elif integration_id and entity and "failures" in data:
            key = failures_key(integration_id, entity)
        else:  # an alert nothing will close: sent each time (rate-limited), never deduplicated
            key = f"{ONE_OFF}{integration_id}"
        return Signal(
            key=key,
            state="open",
            integration_id=integration_id,
            entity=entity,
            severity=str(data.get("severity") or data.get("level") or "error"),
            message=str(data.get("message") or "alert"),
            error=data.get("error"),
        )
    if channel == "alerts" and event_type == "alert.resolved" and data.get("incident"):
        return _resolved(str(data["incident"]), data)
    if (
        channel == "integration_status"
        and event_type == "integration.status"
        and data.get("state") == "closed"
        and integration_id
    ):
        return _resolved(circuit_key(integration_id), data)
    if (
        channel == "sync_updates"
        and event_type == "sync.finished"
        and data.get("status") in ("success", "partial")
        and integration_id
        and entity
    ):
        return _resolved(failures_key(integration_id, entity), data)
    return None


def _resolved(key: str, data: dict[str, Any]) -> Signal:
    return Signal(
        key=key,
        state="resolved",
        integration_id=data.get("integration_id"),
        entity=data.get("entity"),
        severity="info",
        message=str(data.get("message") or ""),
    )

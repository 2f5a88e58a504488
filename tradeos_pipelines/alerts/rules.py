"""Alert rules evaluated from the database: stale syncs and conflicts left waiting.

- **stale sync**: an entity of an enabled integration has had no successful sync for more than
  ``TRADEOS_ALERT_STALE_FACTOR`` × its schedule's interval (nomenclature:
  ``TRADEOS_NOMENCLATURE_SCHEDULE_CRON``; stock and orders:
  ``TRADEOS_STOCK_ORDERS_SCHEDULE_CRON``), counted from the last success or, for an entity
  never synced, from when the integration was created;
- **conflicts waiting**: open conflicts of an integration older than
  ``TRADEOS_ALERT_CONFLICT_HOURS``.

:func:`evaluate` returns what is wrong now; the ``sync_health_alerts`` sensor publishes an
``alert`` for each new incident and ``alert.resolved`` for each one that is gone.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from tradeos_pipelines.core.settings import Settings
from tradeos_pipelines.core.vocabulary import ENTITIES


@dataclass(frozen=True)
class RuleAlert:
    """One incident a rule sees now; ``incident`` is its stable key."""

    incident: str
    kind: str
    integration_id: str
    entity: str | None
    message: str
    details: dict[str, Any]

    def event_data(self) -> dict[str, Any]:
        """The ``data`` of the ``alert`` event (the shape the sidecar's deliverer reads)."""
        return {
            "incident": self.incident,
            "kind": self.kind,
            "integration_id": self.integration_id,
            "entity": self.entity,
            "severity": "warning",
            "message": self.message,
            **self.details,
        }


def _field_values(field: str, low: int, high: int) -> set[int]:
    """The values a cron minute/hour field allows (``*``, ``*/n``, ``a-b``, ``a-b/n``, lists)."""
    values: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            start, end = low, high
        elif "-" in span:
            start, end = (int(v) for v in span.split("-", 1))
        else:
            start = end = int(span)
        values.update(range(start, end + 1, step))
    return values


def cron_interval_seconds(cron: str) -> float:
    """The longest gap between two firings of a cron within a day (minute and hour fields).

    A cron that also restricts days (``0 9 * * 1``) is treated as daily: the rule then fires
    later than it could, never earlier.
    """
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"cron {cron!r}: expected five fields")
    minutes = _field_values(fields[0], 0, 59)
    hours = _field_values(fields[1], 0, 23)
    firings = sorted(h * 60 + m for h in hours for m in minutes)
    if not firings:
        raise ValueError(f"cron {cron!r} never fires")
    gaps = [b - a for a, b in itertools.pairwise(firings)]
    gaps.append(firings[0] + 24 * 60 - firings[-1])  # over midnight
    return max(gaps) * 60.0


def schedule_of(entity: str, settings: Settings) -> str:
    """The cron that syncs ``entity``."""
    if entity == "nomenclature":
        return settings.nomenclature_schedule_cron
    return settings.stock_orders_schedule_cron


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} мин"
    hours = seconds / 3600
    return f"{hours:.0f} ч" if hours < 48 else f"{hours / 24:.0f} дн"


_STALE_SQL = """
SELECT i.id, i.created_at, s.entity, s.last_success_at
FROM integrations i LEFT JOIN sync_state s ON s.integration_id = i.id
WHERE i.enabled
"""

_CONFLICTS_SQL = """
SELECT integration_id, count(*), min(created_at) FROM sync_conflicts
WHERE status = 'open' AND created_at < :before GROUP BY integration_id
"""


def evaluate(session: Session, settings: Settings, now: datetime) -> list[RuleAlert]:
    """Every incident the two rules see at ``now`` (an aware datetime)."""
    alerts: list[RuleAlert] = []
    created: dict[str, datetime] = {}
    last_success: dict[tuple[str, str], datetime | None] = {}
    for integration_id, created_at, entity, success_at in session.execute(text(_STALE_SQL)):
        created[integration_id] = created_at
        if entity is not None:
            last_success[(integration_id, entity)] = success_at
    factor = settings.alert_stale_factor
    for integration_id, created_at in sorted(created.items()):
        for entity in ENTITIES:
            interval = cron_interval_seconds(schedule_of(entity, settings))
            since = last_success.get((integration_id, entity)) or created_at
            age = (now - since).total_seconds()
            if age <= factor * interval:
                continue
            never = last_success.get((integration_id, entity)) is None
            what = "ни одной успешной синхронизации за" if never else "нет успешной синхронизации"
            alerts.append(
                RuleAlert(
                    incident=f"stale_sync:{integration_id}:{entity}",
                    kind="stale_sync",
                    integration_id=integration_id,
                    entity=entity,
                    message=f"{entity}: {what} {_duration(age)} (порог: {factor:g} × "
                    f"{_duration(interval)} по расписанию)",
                    details={
                        "last_success_at": None if never else since.isoformat(),
                        "age_seconds": round(age),
                        "limit_seconds": round(factor * interval),
                    },
                )
            )
    hours = settings.alert_conflict_hours
    before = now - timedelta(hours=hours)
    for integration_id, count, oldest in session.execute(text(_CONFLICTS_SQL), {"before": before}):
        alerts.append(
            RuleAlert(
                incident=f"conflicts_waiting:{integration_id}",
                kind="conflicts_waiting",
                integration_id=integration_id,
                entity=None,
                message=(
                    f"конфликтов ждут решения дольше {hours:g} ч: {count} "
                    f"(самый старый — {_duration((now - oldest).total_seconds())})"
                ),
                details={"conflicts": count, "oldest_created_at": oldest.isoformat()},
            )
        )
    return alerts

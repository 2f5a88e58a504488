"""The database-side alert rules: stale syncs and conflicts left waiting (real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradeos_pipelines.alerts.rules import cron_interval_seconds, evaluate
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.storage.tables import SyncConflict, SyncState

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "seconds"),
    [
        ("0 * * * *", 3600),
        ("*/15 * * * *", 900),
        ("0,10 * * * *", 3000),  # :00 → :10 is 10 min, :10 → next :00 is 50 min
        ("0 9,18 * * *", 15 * 3600),
        ("30 2 * * *", 24 * 3600),
        ("0 9-17/4 * * 1-5", 16 * 3600),  # 9, 13, 17; days are ignored (treated as daily)
    ],
)
def test_cron_interval(cron, seconds):
    assert cron_interval_seconds(cron) == seconds


def test_cron_interval_refuses_a_malformed_cron():
    with pytest.raises(ValueError, match="expected five fields"):
        cron_interval_seconds("0 * * *")


def _conflict(session, n: int, age: timedelta, status: str = "open") -> None:
    session.add(
        SyncConflict(
            integration_id="main-1c",
            entity="nomenclature",
            onec_id=f"00000000-0000-0000-0000-00000000000{n}",
            field="price",
            status=status,
            created_at=NOW - age,
        )
    )


def test_stale_entities_and_old_conflicts(make_integration, session):
    make_integration("main-1c", created_at=NOW - timedelta(hours=10))
    make_integration("off-1c", enabled=False, created_at=NOW - timedelta(days=30))
    session.add_all(
        [
            # hourly schedule × 3: 3 h allowed, 4 h passed
            SyncState(
                integration_id="main-1c",
                entity="nomenclature",
                last_success_at=NOW - timedelta(hours=4),
            ),
            # every 15 min × 3: 45 min allowed, 10 min passed
            SyncState(
                integration_id="main-1c",
                entity="stock",
                last_success_at=NOW - timedelta(minutes=10),
            ),
            # orders never succeeded: counted from the integration's creation, 10 h ago
        ]
    )
    _conflict(session, 1, timedelta(hours=30))
    _conflict(session, 2, timedelta(hours=25))
    _conflict(session, 3, timedelta(hours=1))
    _conflict(session, 4, timedelta(hours=40), status="resolved")
    session.commit()
    alerts = evaluate(session, get_settings(), NOW)
    assert [(a.incident, a.message) for a in alerts] == [
        (
            "stale_sync:main-1c:nomenclature",
            "nomenclature: нет успешной синхронизации 4 ч (порог: 3 × 60 мин по расписанию)",
        ),
        (
            "stale_sync:main-1c:orders",
            "orders: ни одной успешной синхронизации за 10 ч (порог: 3 × 15 мин по расписанию)",
        ),
        (
            "conflicts_waiting:main-1c",
            "конфликтов ждут решения дольше 24 ч: 2 (самый старый — 30 ч)",
        ),
    ]
    stale = alerts[0].event_data()
    assert stale == {
        "incident": "stale_sync:main-1c:nomenclature",
        "kind": "stale_sync",
        "integration_id": "main-1c",
        "entity": "nomenclature",
        "severity": "warning",
        "message": alerts[0].message,
        "last_success_at": (NOW - timedelta(hours=4)).isoformat(),
        "age_seconds": 4 * 3600,
        "limit_seconds": 3 * 3600,
    }


def test_nothing_is_wrong_within_the_limits(make_integration, session):
    make_integration("main-1c", created_at=NOW - timedelta(minutes=20))
    _conflict(session, 1, timedelta(hours=23))
    session.commit()
    assert evaluate(session, get_settings(), NOW) == []

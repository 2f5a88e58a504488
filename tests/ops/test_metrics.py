"""``/metrics`` on a real sidecar: every number comes from rows and Redis state set up here."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from tradeos_pipelines.event_bus import RedisEventBus
from tradeos_pipelines.sources.common.breaker import CircuitBreaker
from tradeos_pipelines.storage.tables import IntegrationLog, SyncConflict, SyncLog, SyncRequest


@pytest.fixture
def fresh_metrics(sidecar, monkeypatch):
    """Every scrape computes anew (the cache is tested on its own)."""
    monkeypatch.setattr(sidecar.runtime.settings, "metrics_cache_seconds", 0.0)


def scrape(anonymous, admin_token) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = anonymous.get("/metrics", headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_need_the_token(anonymous):
    assert anonymous.get("/metrics").status_code == 401
    assert anonymous.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401


def _sync(session, entity, status, seconds, *, ago_minutes=10, **counts) -> None:
    started = datetime.now(UTC) - timedelta(minutes=ago_minutes)
    session.add(
        SyncLog(
            integration_id="main-1c",
            entity=entity,
            status=status,
            started_at=started,
            finished_at=None if status == "running" else started + timedelta(seconds=seconds),
            **counts,
        )
    )


def test_sync_metrics_from_sync_logs(
    anonymous, admin_token, make_integration, session, fresh_metrics
):
    make_integration("main-1c")
    _sync(session, "nomenclature", "success", 0.8, fetched=100, created=100)
    _sync(session, "nomenclature", "success", 4, fetched=10, updated=3, unchanged=7)
    _sync(session, "nomenclature", "partial", 45, fetched=5, created=3, rejected=2)
    _sync(session, "stock", "failed", 700)
    _sync(session, "stock", "running", 0)
    session.commit()
    m = scrape(anonymous, admin_token)
    nom = (("entity", "nomenclature"), ("integration", "main-1c"))
    stock = (("entity", "stock"), ("integration", "main-1c"))
    assert m[("tradeos_syncs_total", (*nom, ("status", "success")))] == 2
    assert m[("tradeos_syncs_total", (*nom, ("status", "partial")))] == 1
    assert m[("tradeos_syncs_total", (*stock, ("status", "failed")))] == 1
    assert ("tradeos_syncs_total", (*stock, ("status", "running"))) not in m
    assert m[("tradeos_syncs_running", stock)] == 1
    rows = {
        kind: m[("tradeos_sync_rows_total", (*nom, ("kind", kind)))]
        for kind in (
            "fetched",
            "created",
            "updated",
            "unchanged",
            "deleted",
            "conflicts",
            "rejected",
        )
    }
    assert rows == {
        "fetched": 115,
        "created": 103,
        "updated": 3,
        "unchanged": 7,
        "deleted": 0,
        "conflicts": 0,
        "rejected": 2,
    }
    assert m[("tradeos_sync_duration_seconds_count", nom)] == 3
    assert m[("tradeos_sync_duration_seconds_sum", nom)] == pytest.approx(49.8)
    assert m[("tradeos_sync_duration_seconds_bucket", (*nom, ("le", "1.0")))] == 1
    assert m[("tradeos_sync_duration_seconds_bucket", (*nom, ("le", "5.0")))] == 2
    assert m[("tradeos_sync_duration_seconds_bucket", (*nom, ("le", "30.0")))] == 2
    assert m[("tradeos_sync_duration_seconds_bucket", (*nom, ("le", "60.0")))] == 3
    assert m[("tradeos_sync_duration_seconds_bucket", (*stock, ("le", "600.0")))] == 0
    assert m[("tradeos_sync_duration_seconds_bucket", (*stock, ("le", "1800.0")))] == 1
    assert m[("tradeos_sync_duration_seconds_bucket", (*stock, ("le", "+Inf")))] == 1
    assert m[("tradeos_integration_enabled", (("integration", "main-1c"),))] == 1


def test_conflicts_requests_and_1c_calls(
    anonymous, admin_token, make_integration, session, fresh_metrics
):
    make_integration("main-1c")
    now = datetime.now(UTC)
    for n, age_hours in enumerate((5, 1)):
        session.add(
            SyncConflict(
                integration_id="main-1c",
                entity="nomenclature",
                onec_id=f"00000000-0000-0000-0000-00000000000{n}",
                field="price",
                created_at=now - timedelta(hours=age_hours),
            )
        )
    session.add(SyncRequest(integration_id="main-1c", entities=["stock"], source="webhook"))
    settled = now - timedelta(minutes=5)
    for status_code, ms, error in (
        (200, 40, None),
        (200, 300, None),
        (503, 1200, "busy"),
        (None, 5000, "ConnectError"),
    ):
        session.add(
            IntegrationLog(
                integration_id="main-1c",
                at=settled,
                method="GET",
                path="/hs/api/stock",
                status_code=status_code,
                duration_ms=ms,
                error=error,
            )
        )
    # Written a moment ago: left for a later scrape (a run may still be writing its batch).
    session.add(
        IntegrationLog(
            integration_id="main-1c",
            at=now,
            method="GET",
            path="/hs/api/stock",
            status_code=500,
            duration_ms=10,
        )
    )
    session.commit()
    m = scrape(anonymous, admin_token)
    pair = (("entity", "nomenclature"), ("integration", "main-1c"))
    assert m[("tradeos_conflicts_open", pair)] == 2
    assert 5 * 3600 <= m[("tradeos_conflicts_oldest_open_age_seconds", pair)] < 5 * 3600 + 60
    assert m[("tradeos_sync_requests_waiting", (("integration", "main-1c"),))] == 1
    ok = (("integration", "main-1c"), ("status", "200"))
    assert m[("tradeos_onec_requests_total", ok)] == 2
    assert m[("tradeos_onec_requests_total", (("integration", "main-1c"), ("status", "503")))] == 1
    assert (
        m[("tradeos_onec_requests_total", (("integration", "main-1c"), ("status", "error")))] == 1
    )
    assert ("tradeos_onec_requests_total", (("integration", "main-1c"), ("status", "500"))) not in m
    assert m[("tradeos_onec_request_duration_seconds_sum", ok)] == pytest.approx(0.34)
    assert (
        m[("tradeos_onec_request_duration_seconds_bucket", (*ok[:1], ("le", "0.05"), ok[1]))] == 1
    )
    assert m[("tradeos_onec_request_duration_seconds_bucket", (*ok[:1], ("le", "0.5"), ok[1]))] == 2
    # The next scrape adds only new rows: the counters keep what they had.
    m = scrape(anonymous, admin_token)
    assert m[("tradeos_onec_requests_total", ok)] == 2


def test_breaker_websocket_and_stream_metrics(
    anonymous, admin_token, make_integration, ws_connect, redis_url, sidecar, fresh_metrics
):
    make_integration("main-1c")
    make_integration("second-1c")

    async def open_breaker() -> None:
        client = aioredis.Redis.from_url(redis_url)
        breaker = CircuitBreaker(client, "main-1c", failure_threshold=2)
        await breaker.record_failure("connect error")
        await breaker.record_failure("connect error")
        await client.aclose()

    asyncio.run(open_breaker())
    ws = ws_connect("alerts")
    ws.recv_type("welcome")
    bus = RedisEventBus.from_settings()
    bus.publish("sync_updates", "sync.started", {"integration_id": "main-1c"})
    ws_connect("sync_updates").recv_type("welcome")
    m = scrape(anonymous, admin_token)
    states = {
        s: m[("tradeos_breaker_state", (("integration", "main-1c"), ("state", s)))]
        for s in ("closed", "half_open", "open")
    }
    assert states == {"closed": 0, "half_open": 0, "open": 1}
    assert m[("tradeos_breaker_failures", (("integration", "main-1c"),))] == 2
    assert m[("tradeos_breaker_state", (("integration", "second-1c"), ("state", "closed")))] == 1
    assert m[("tradeos_websocket_clients", ())] == 2
    # The breaker's opening published integration.status and an alert.
    assert m[("tradeos_event_stream_length", (("channel", "alerts"),))] == 1
    assert m[("tradeos_event_stream_length", (("channel", "integration_status"),))] == 1
    assert m[("tradeos_event_stream_length", (("channel", "sync_updates"),))] == 1
    assert m[("tradeos_event_stream_length", (("channel", "runs"),))] == 0
    assert m[("tradeos_redis_up", ())] == 1


def test_a_scrape_within_the_cache_time_is_served_from_cache(
    anonymous, admin_token, make_integration, session, sidecar, monkeypatch
):
    monkeypatch.setattr(sidecar.runtime.settings, "metrics_cache_seconds", 0.0)
    make_integration("main-1c")
    scrape(anonymous, admin_token)
    monkeypatch.setattr(sidecar.runtime.settings, "metrics_cache_seconds", 60.0)
    first = scrape(anonymous, admin_token)
    _sync(session, "stock", "failed", 1)
    session.commit()
    key = (
        "tradeos_syncs_total",
        (("entity", "stock"), ("integration", "main-1c"), ("status", "failed")),
    )
    assert key not in first
    assert key not in scrape(anonymous, admin_token)  # cached
    monkeypatch.setattr(sidecar.runtime.settings, "metrics_cache_seconds", 0.0)
    assert scrape(anonymous, admin_token)[key] == 1


def _family(name: str) -> str:
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_docs_and_grafana_name_only_metrics_the_sidecar_serves(
    anonymous, admin_token, make_integration, fresh_metrics
):
    make_integration("main-1c")
    response = anonymous.get("/metrics", headers={"Authorization": f"Bearer {admin_token}"})
    served = {f.name for f in text_string_to_metric_families(response.text)}
    served.add("tradeos_dagster_runs")  # only with DAGSTER_HOME; this sidecar has none
    docs = Path(__file__).resolve().parents[2] / "docs"
    table = re.findall(r"^\| `(tradeos_\w+)`", (docs / "monitoring.md").read_text(), re.M)
    grafana = re.findall(r"tradeos_\w+", (docs / "grafana-dashboard.json").read_text())
    assert {_family(n) for n in table} == served
    assert {_family(n) for n in grafana} <= served

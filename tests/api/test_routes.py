"""Health, test-connection, sync now, logs, stats, conflicts and the 1C webhook."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import select

from api.services.integration_health import cache_key as health_cache_key
from api.services.webhooks import sign
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.devstack.embedded import find_free_port
from tradeos_pipelines.sources.common.cache import _prefix
from tradeos_pipelines.storage.tables import (
    IntegrationLog,
    Product,
    SyncConflict,
    SyncLog,
    SyncReject,
    SyncRequest,
)

WEBHOOK_SECRET = "webhook-secret-0123456789"


@pytest.fixture
def dagster_down(monkeypatch):
    """Point the sidecar at a port where no Dagster webserver listens."""
    monkeypatch.setenv("TRADEOS_DAGSTER_URL", f"http://127.0.0.1:{find_free_port()}")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_health_is_degraded_not_500_when_dagster_is_down(anonymous, sidecar, monkeypatch):
    monkeypatch.setattr(sidecar.runtime.settings, "dagster_url", "http://127.0.0.1:9")
    response = anonymous.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"
    assert body["checks"]["dagster"]["status"] == "error"
    assert "127.0.0.1:9" in body["checks"]["dagster"]["detail"]


def test_test_connection_against_the_emulator(api, make_integration, emulator):
    make_integration("main-1c", base_url=emulator.base_url, api_key="test-key")
    response = api.post("/integrations/main-1c/test-connection")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["version"] and body["latency_ms"] > 0

    make_integration("wrong-key", base_url=emulator.base_url, api_key="wrong-secret-key")
    bad = api.post("/integrations/wrong-key/test-connection").json()
    assert bad["ok"] is False and bad["error"] and "wrong-secret-key" not in bad["error"]
    assert api.post("/integrations/nope/test-connection").status_code == 404


def test_sync_now_queues_a_request_when_dagster_is_down(
    api, make_integration, session, dagster_down
):
    make_integration("main-1c")
    response = api.post("/integrations/main-1c/sync", json={"entities": ["stock"], "full": True})
    assert response.status_code == 202, response.text
    body = response.json()
    request = session.scalars(select(SyncRequest)).one()
    assert body == {"run_ids": [], "request_id": request.id}
    assert (request.entities, request.full, request.source) == (["stock"], True, "manual")


def test_health_shows_a_request_waiting_for_the_daemon(
    api, make_integration, session, dagster_down, redis_client
):
    make_integration("main-1c")
    before = api.get("/integrations/main-1c/health").json()  # now cached
    assert before["entities"] == {} and before["status"] == "never_synced"
    api.post("/integrations/main-1c/sync", json={"entities": ["stock", "orders"]})
    body = api.get("/integrations/main-1c/health").json()
    assert body["cached"] is False, "sync now must drop the cached health"
    assert {e for e, info in body["entities"].items() if info["waiting"]} == {"stock", "orders"}
    assert body["entities"]["stock"]["last_sync"] is None
    assert body["status"] == "never_synced"

    # Once the request sensor picked the request, it is Dagster's run, no longer waiting.
    request = session.scalars(select(SyncRequest)).one()
    request.picked_at = datetime.now(UTC)
    session.commit()
    redis_client.delete(health_cache_key("main-1c"))
    fresh = api.get("/integrations/main-1c/health").json()
    assert not any(info["waiting"] for info in fresh["entities"].values())


def test_health_is_not_served_from_cache_after_the_integration_changes(api, make_integration):
    make_integration("main-1c")
    assert api.get("/integrations/main-1c/health").json()["enabled"] is True  # now cached
    api.post("/integrations/main-1c/disable")
    disabled = api.get("/integrations/main-1c/health").json()
    assert (disabled["cached"], disabled["enabled"], disabled["status"]) == (
        False,
        False,
        "disabled",
    )
    api.post("/integrations/main-1c/enable")
    enabled = api.get("/integrations/main-1c/health").json()
    assert (enabled["cached"], enabled["status"]) == (False, "never_synced")
    api.patch("/integrations/main-1c", json={"name": "Склад на Ленина"})
    assert api.get("/integrations/main-1c/health").json()["cached"] is False

    assert api.delete("/integrations/main-1c").status_code == 204
    gone = api.get("/integrations/main-1c/health")
    assert (gone.status_code, gone.json()["detail"]) == (
        404,
        "integration 'main-1c' does not exist",
    )


def _logs(session, integration_id="main-1c"):
    now = datetime.now(UTC)
    rows = []
    for i, (entity, status, seconds) in enumerate(
        [
            ("nomenclature", "success", 2),
            ("nomenclature", "failed", 4),
            ("stock", "success", 1),
            ("nomenclature", "success", 10),
            ("stock", "running", None),
            ("orders", "partial", 3),
        ]
    ):
        started = now - timedelta(minutes=60 - i * 5)
        rows.append(
            SyncLog(
                integration_id=integration_id,
                entity=entity,
                status=status,
                started_at=started,
                finished_at=started + timedelta(seconds=seconds) if seconds else None,
                fetched=100 * (i + 1),
                created=i,
                updated=2 * i,
                rejected=1 if i == 5 else 0,
                error="1C недоступна" if status == "failed" else None,
            )
        )
    session.add_all(rows)
    session.commit()
    return rows


def test_sync_logs_filters_pagination_and_detail(api, make_integration, session):
    make_integration("main-1c")
    rows = _logs(session)
    session.add(
        SyncReject(sync_log_id=rows[5].id, onec_id="abc", reason="нет имени", payload={"id": "abc"})
    )
    session.commit()
    page1 = api.get("/sync-logs", params={"limit": 4}).json()
    assert [r["id"] for r in page1["data"]] == [6, 5, 4, 3]
    assert page1["count"] == 4 and page1["next_cursor"]
    page2 = api.get("/sync-logs", params={"limit": 4, "cursor": page1["next_cursor"]}).json()
    assert [r["id"] for r in page2["data"]] == [2, 1] and page2["next_cursor"] is None
    failed = api.get("/sync-logs", params={"status": "failed"}).json()["data"]
    assert [r["error"] for r in failed] == ["1C недоступна"]
    stock = api.get("/sync-logs", params={"entity": "stock", "integration_id": "main-1c"})
    assert {r["entity"] for r in stock.json()["data"]} == {"stock"}
    assert api.get("/sync-logs", params={"integration_id": "other"}).json()["data"] == []
    bad = api.get("/sync-logs", params={"cursor": "garbage!"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "cursor"
    assert api.get("/sync-logs", params={"status": "exploded"}).status_code == 422
    detail = api.get(f"/sync-logs/{rows[5].id}").json()
    assert detail["rejects"][0]["reason"] == "нет имени" and detail["duration_ms"] == 3000.0
    assert api.get("/sync-logs/999999").status_code == 404


def test_integration_request_log(api, make_integration, session):
    make_integration("main-1c")
    session.add_all(
        [
            IntegrationLog(
                integration_id="main-1c",
                method="GET",
                path=f"/hs/api/stock?page={i}",
                status_code=code,
                duration_ms=5,
                error=err,
            )
            for i, (code, err) in enumerate(
                [(200, None), (503, "1C busy"), (None, "timeout"), (200, None)]
            )
        ]
    )
    session.add(
        IntegrationLog(
            integration_id="other", method="GET", path="/x", status_code=200, duration_ms=1
        )
    )
    session.commit()
    all_rows = api.get("/integrations/main-1c/logs").json()
    assert all_rows["count"] == 4
    errors = api.get("/integrations/main-1c/logs", params={"errors_only": True}).json()
    assert [r["error"] for r in errors["data"]] == ["timeout", "1C busy"]
    only_503 = api.get("/integrations/main-1c/logs", params={"status_code": 503}).json()
    assert [r["status_code"] for r in only_503["data"]] == [503]
    first = api.get("/integrations/main-1c/logs", params={"limit": 3}).json()
    rest = api.get("/integrations/main-1c/logs", params={"cursor": first["next_cursor"]}).json()
    assert len(first["data"]) == 3 and len(rest["data"]) == 1
    assert api.get("/integrations/nope/logs").status_code == 404


def test_stats_per_integration_and_entity(api, make_integration, session):
    make_integration("main-1c")
    _logs(session)
    body = api.get("/stats", params={"window": "24h"}).json()
    by_entity = {d["entity"]: d for d in body["data"]}
    nomenclature = by_entity["nomenclature"]
    assert (nomenclature["runs"], nomenclature["success"], nomenclature["failed"]) == (3, 2, 1)
    assert nomenclature["success_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert nomenclature["mean_duration_ms"] == pytest.approx(16000 / 3, abs=1)
    # percentile_cont over 2 s, 4 s, 10 s: 4 + 0.9 * (10 - 4) = 9.4 s
    assert nomenclature["p95_duration_ms"] == pytest.approx(9400, abs=1)
    assert nomenclature["rows"]["fetched"] == 100 + 200 + 400
    stock = by_entity["stock"]
    assert stock["running"] == 1 and stock["success_rate"] == 1.0
    assert by_entity["orders"]["rows"]["rejected"] == 1
    assert api.get("/stats", params={"window": "1m"}).json()["data"] == []
    assert api.get("/stats", params={"entity": "stock"}).json()["count"] == 1
    for bad in ("24", "0h", "1y", "100d"):
        response = api.get("/stats", params={"window": bad})
        assert response.status_code == 422 and response.json()["detail"][0]["field"] == "window"


def test_stats_series_shape(api, make_integration, session):
    make_integration("main-1c")
    _logs(session)
    body = api.get("/stats/series", params={"window": "2h", "bucket": "15m"}).json()
    n = len(body["t"])
    assert 8 <= n <= 9 and all(b - a == 900 for a, b in zip(body["t"], body["t"][1:], strict=False))
    assert sum(body["totals"]["runs"]) == 6
    series = {s["entity"]: s for s in body["series"]}
    assert set(series) == {"nomenclature", "stock", "orders"}
    for s in series.values():
        for key in ("runs", "success", "failed", "mean_duration_ms", "p95_duration_ms", "fetched"):
            assert len(s[key]) == n
    assert sum(series["nomenclature"]["failed"]) == 1
    assert api.get("/stats/series", params={"window": "90d", "bucket": "1h"}).status_code == 422
    bad = api.get("/stats/series", params={"bucket": "10s"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "bucket"


def test_integration_health_route(api, make_integration, session):
    make_integration("main-1c")
    assert api.get("/integrations/main-1c/health").json()["status"] == "never_synced"
    make_integration("failing")
    _logs(session, "failing")
    session.add(
        SyncLog(
            integration_id="failing",
            entity="stock",
            status="failed",
            started_at=datetime.now(UTC),
            finished_at=datetime.now(UTC),
        )
    )
    session.commit()
    body = api.get("/integrations/failing/health").json()
    assert body["status"] == "failing" and body["error_streak"] == 1
    assert body["entities"]["stock"]["error_streak"] == 1
    assert body["entities"]["nomenclature"]["last_sync"]["status"] == "success"
    assert body["circuit"]["state"] == "closed" and body["cached"] is False
    assert api.get("/integrations/failing/health").json()["cached"] is True
    assert api.get("/integrations/nope/health").status_code == 404


def test_conflicts_list_and_resolve(api, make_integration, session):
    make_integration("main-1c", conflict_policy="manual")
    onec_id = uuid.uuid4()
    session.add(
        Product(
            integration_id="main-1c",
            onec_id=onec_id,
            name="Молоко (TradeOS)",
            onec_values={"name": "Молоко (1С)"},
        )
    )
    session.flush()
    conflict = SyncConflict(
        integration_id="main-1c",
        entity="nomenclature",
        onec_id=onec_id,
        field="name",
        tradeos_value="Молоко (TradeOS)",
        onec_value="Молоко (1С)",
    )
    session.add(conflict)
    session.commit()
    listed = api.get("/conflicts", params={"status": "open"}).json()
    assert [c["id"] for c in listed["data"]] == [conflict.id]
    assert api.get("/conflicts", params={"integration_id": "other"}).json()["data"] == []
    bad = api.post(f"/conflicts/{conflict.id}/resolve", json={"resolution": "coin"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "resolution"
    done = api.post(f"/conflicts/{conflict.id}/resolve", json={"resolution": "onec"})
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["resolution"]) == ("resolved", "onec")
    session.expire_all()
    assert session.scalars(select(Product.name)).one() == "Молоко (1С)"
    again = api.post(f"/conflicts/{conflict.id}/resolve", json={"resolution": "tradeos"})
    assert again.status_code == 409
    assert api.post("/conflicts/999999/resolve", json={"resolution": "onec"}).status_code == 404


def _webhook(api, integration_id, payload, secret=WEBHOOK_SECRET, signature=None):
    body = orjson.dumps(payload)
    headers = {
        "Content-Type": "application/json",
        "X-TradeOS-Signature": signature or sign(secret, body),
    }
    return api.post(f"/webhooks/1c/{integration_id}", content=body, headers=headers)


def test_webhook_good_signature_queues_a_sync_and_drops_the_cache(
    api, make_integration, session, redis_client
):
    make_integration("main-1c", webhook_secret=WEBHOOK_SECRET)
    cached = _prefix("main-1c", "stock", get_settings().redis_namespace) + "probe"
    redis_client.set(cached, b"{}")
    payload = {
        "entities": ["stock", "nomenclature"],
        "sent_at": datetime.now(UTC).isoformat(),
        "ids": ["a1"],
    }
    response = _webhook(api, "main-1c", payload)
    assert response.status_code == 202, response.text
    request = session.scalars(select(SyncRequest)).one()
    assert response.json() == {"run_ids": [], "request_id": request.id}
    assert (request.entities, request.source) == (["stock", "nomenclature"], "webhook")
    assert not redis_client.exists(cached)
    # Unix seconds work too.
    unix = {"entities": ["orders"], "sent_at": time.time()}
    assert _webhook(api, "main-1c", unix).status_code == 202


def test_webhook_bad_signature_is_401_and_records_nothing(api, make_integration, session):
    make_integration("main-1c", webhook_secret=WEBHOOK_SECRET)
    payload = {"entities": ["stock"], "sent_at": datetime.now(UTC).isoformat()}
    for signature in ("sha256=" + "0" * 64, "md5=abc", "garbage"):
        response = _webhook(api, "main-1c", payload, signature=signature)
        assert response.status_code == 401, signature
    assert _webhook(api, "main-1c", payload, secret="another-secret-123456").status_code == 401
    body = orjson.dumps(payload)
    unsigned = api.post("/webhooks/1c/main-1c", content=body)
    assert unsigned.status_code == 401
    assert session.scalars(select(SyncRequest)).all() == []


def test_webhook_replay_and_stale_timestamps_are_refused(api, make_integration, session):
    make_integration("main-1c", webhook_secret=WEBHOOK_SECRET)
    payload = {"entities": ["stock"], "sent_at": datetime.now(UTC).isoformat()}
    assert _webhook(api, "main-1c", payload).status_code == 202
    replay = _webhook(api, "main-1c", payload)
    assert replay.status_code == 409 and "already" in replay.json()["detail"]
    skew = get_settings().webhook_max_skew_seconds
    for shift in (-(skew + 60), skew + 60):
        stale = {
            "entities": ["stock"],
            "sent_at": (datetime.now(UTC) + timedelta(seconds=shift)).isoformat(),
        }
        response = _webhook(api, "main-1c", stale)
        assert response.status_code == 401 and "sent_at" in response.json()["detail"]
    assert len(session.scalars(select(SyncRequest)).all()) == 1


def test_webhook_validation_names_the_field(api, make_integration):
    make_integration("main-1c", webhook_secret=WEBHOOK_SECRET)
    now = datetime.now(UTC).isoformat()
    cases = [
        ({"entities": ["prices"], "sent_at": now}, "entities.0"),
        ({"entities": ["stock"]}, "sent_at"),
        ({"entities": ["stock"], "sent_at": "2026-11-27T10:00:00"}, "sent_at"),
        ({"entities": [], "sent_at": now}, "entities"),
    ]
    for payload, field in cases:
        response = _webhook(api, "main-1c", payload)
        assert response.status_code == 422, payload
        assert field in {d["field"] for d in response.json()["detail"]}, response.json()
    assert _webhook(api, "nope", {"entities": ["stock"], "sent_at": now}).status_code == 404

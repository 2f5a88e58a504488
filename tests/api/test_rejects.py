"""GET /integrations/{id}/rejects: open rejects, one per 1C row, closed by a good version."""

from __future__ import annotations

from api.services.integration_health import cache_key as health_cache_key
from tradeos_pipelines.engine import sync_nomenclature


def test_open_rejects_are_listed_once_per_row_until_fixed_in_1c(
    api, make_integration, emulator, monkeypatch, redis_client
):
    monkeypatch.setenv("TRADEOS_OVERLAP_SECONDS", "0")
    make_integration("main-1c", base_url=emulator.base_url, page_size=100)
    sync_nomenclature("main-1c")
    (bad,) = emulator.control.inject_bad_rows("no_name", 1)
    sync_nomenclature("main-1c")
    full = sync_nomenclature("main-1c", full=True)  # rejects the same row again

    answer = api.get("/integrations/main-1c/rejects")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["count"], body["total"]) == (1, 1)
    (row,) = body["data"]
    assert (row["entity"], row["onec_id"], row["reason"]) == (
        "nomenclature",
        bad["id"],
        "name: missing (required for an item that is not a folder)",
    )
    assert (row["times_rejected"], row["sync_log_id"]) == (2, full.sync_log_id)
    assert row["payload"]["name"] == ""
    assert api.get("/integrations/main-1c/rejects?entity=stock").json()["total"] == 0
    # The dashboard's card reads the count from the integration's health.
    health = api.get("/integrations/main-1c/health").json()
    assert health["entities"]["nomenclature"]["open_rejects"] == 1

    emulator.control.fix_bad_rows([bad["id"]])
    sync_nomenclature("main-1c")
    assert api.get("/integrations/main-1c/rejects").json() == {"data": [], "count": 0, "total": 0}
    redis_client.delete(health_cache_key("main-1c"))  # the status is cached for 15 s
    health = api.get("/integrations/main-1c/health").json()
    assert health["entities"]["nomenclature"]["open_rejects"] == 0


def test_rejects_of_an_unknown_integration_or_entity_say_what_is_wrong(api):
    missing = api.get("/integrations/nope/rejects")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    bad_entity = api.get("/integrations/nope/rejects?entity=prices")
    assert bad_entity.status_code == 422 and "entity" in bad_entity.text

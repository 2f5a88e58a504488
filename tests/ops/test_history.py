"""Product history and restore through the sidecar's REST API and `tradeos history|restore`,
on real syncs of the 1C emulator."""

from __future__ import annotations

from decimal import Decimal

import psycopg2
import pytest
from sqlalchemy import text

from tradeos_pipelines.cli import main
from tradeos_pipelines.engine import sync_nomenclature
from tradeos_pipelines.engine.connection import libpq_dsn, try_lock


@pytest.fixture
def synced(api, make_integration, emulator, session, monkeypatch):
    """main-1c synced three times: v1 creates, v2 and v3 change one product's price."""
    monkeypatch.setenv("TRADEOS_OVERLAP_SECONDS", "0")
    from tradeos_pipelines.core.settings import get_settings

    get_settings.cache_clear()
    make_integration("main-1c", base_url=emulator.base_url)
    first = sync_nomenclature("main-1c")
    (item,) = emulator.control.change_items(1)
    second = sync_nomenclature("main-1c")
    emulator.control.change_items(ids=[item])
    third = sync_nomenclature("main-1c")
    get_settings.cache_clear()
    changes = [
        c
        for e in api.get(f"/integrations/main-1c/products/{item}/history").json()["data"]
        for c in e["changes"]
    ]
    # As the API shows them: the price after v1, after v2, after v3.
    prices = [changes[0]["from"], changes[0]["to"], changes[1]["to"]]
    return {"item": item, "versions": (first, second, third), "prices": prices}


def _price(session, item: str) -> Decimal:
    session.expire_all()
    return session.execute(
        text("SELECT price FROM products WHERE onec_id = :i"), {"i": item}
    ).scalar_one()


def test_history_route(api, synced):
    item = synced["item"]
    first, second, third = synced["versions"]
    body = api.get(f"/integrations/main-1c/products/{item}/history").json()
    assert body["onec_id"] == item
    assert [(e["sync_version"], e["change"], e["sync_log_id"]) for e in body["data"]] == [
        (first.sync_version, "created", first.sync_log_id),
        (second.sync_version, "updated", second.sync_log_id),
        (third.sync_version, "updated", third.sync_log_id),
    ]
    assert [[c["field"] for c in e["changes"]] for e in body["data"]] == [[], ["price"], ["price"]]
    assert body["data"][2]["changes"][0]["from"] == body["data"][1]["changes"][0]["to"]


def test_history_route_bad_input(api, synced):
    response = api.get("/integrations/main-1c/products/not-a-uuid/history")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "onec_id"]
    missing = "00000000-0000-0000-0000-000000000001"
    response = api.get(f"/integrations/main-1c/products/{missing}/history")
    assert (response.status_code, response.json()["detail"]) == (
        404,
        f"integration 'main-1c' has no product with 1C id {missing}",
    )
    response = api.get(f"/integrations/nope/products/{missing}/history")
    assert (response.status_code, response.json()["detail"]) == (
        404,
        "integration 'nope' does not exist",
    )


def test_restore_route_dry_run_then_apply(api, synced, session):
    item = synced["item"]
    first, _, third = synced["versions"]
    at_first, _, now = (Decimal(str(p)) for p in synced["prices"])
    assert _price(session, item) == now
    plan = api.post("/integrations/main-1c/restore", json={"to_version": first.sync_version})
    assert plan.status_code == 200, plan.text
    body = plan.json()
    assert (body["applied"], body["changed"], body["unchanged"], body["sync_version"]) == (
        False,
        1,
        199,
        None,
    )
    (product,) = body["products"]
    assert product["onec_id"] == item
    assert [(c["field"], c["from"], c["to"]) for c in product["changes"]] == [
        ("price", synced["prices"][2], synced["prices"][0])
    ]
    assert _price(session, item) == now  # nothing written

    done = api.post(
        "/integrations/main-1c/restore",
        json={"to_version": first.sync_version, "dry_run": False},
    ).json()
    assert (done["applied"], done["changed"]) == (True, 1)
    assert done["sync_version"] > third.sync_version
    assert _price(session, item) == at_first
    log = api.get(f"/sync-logs/{done['sync_log_id']}").json()
    assert (log["run_id"], log["status"], log["updated"]) == (
        f"restore:{first.sync_version}",
        "success",
        1,
    )
    history = api.get(f"/integrations/main-1c/products/{item}/history").json()["data"]
    assert (history[-1]["change"], history[-1]["sync_version"]) == (
        "restored",
        done["sync_version"],
    )


def test_restore_route_refusals(api, synced, db):
    first = synced["versions"][0]
    response = api.post("/integrations/main-1c/restore", json={"to_version": 999999})
    versions = ", ".join(str(v.sync_version) for v in reversed(synced["versions"]))
    assert (response.status_code, response.json()["detail"]) == (
        404,
        f"999999 is not a sync version of integration 'main-1c'; latest versions: {versions}",
    )
    assert api.post("/integrations/main-1c/restore", json={"to_version": 0}).status_code == 422
    too_big = api.post("/integrations/main-1c/restore", json={"to_version": 10**20})
    assert (too_big.status_code, too_big.json()["detail"][0]["field"]) == (422, "to_version")
    holder = psycopg2.connect(libpq_dsn(db))
    holder.autocommit = True
    try:
        assert try_lock(holder, "main-1c", "nomenclature")
        response = api.post(
            "/integrations/main-1c/restore",
            json={"to_version": first.sync_version, "dry_run": False},
        )
    finally:
        holder.close()
    assert (response.status_code, response.json()["detail"]) == (
        409,
        "a nomenclature sync of integration 'main-1c' is running; restore after it finishes",
    )


def test_cli_history_and_restore(synced, sidecar, admin_token, capsys, monkeypatch, session):
    monkeypatch.setenv("TRADEOS_API_URL", sidecar.base_url)
    monkeypatch.setenv("TRADEOS_TOKEN", admin_token)
    item = synced["item"]
    first, second, _ = synced["versions"]
    assert main(["history", "main-1c", item]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(item)
    assert lines[1].split() == ["VERSION", "AT", "CHANGE", "FIELD", "FROM", "TO"]
    assert lines[2].split()[0] == str(first.sync_version)
    assert lines[2].split()[-1] == "created"
    assert lines[3].split()[0] == str(second.sync_version)
    assert lines[3].split()[-5:-3] == ["updated", "price"]
    assert lines[3].endswith(f"{synced['prices'][0]}  → {synced['prices'][1]}")

    assert main(["restore", "main-1c", "--to-version", str(first.sync_version)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"main-1c: would restore 1 products to sync version {first.sync_version} "
        "(199 already as then, 0 created later left as they are)"
    )
    assert out[1].endswith(f": price {synced['prices'][2]} → {synced['prices'][0]}")
    assert out[2] == "nothing was changed; run again with --apply to restore"

    assert main(["restore", "main-1c", "--to-version", str(first.sync_version), "--apply"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("main-1c: restored 1 products to sync version")
    assert out[-1].startswith("new sync version ")

    assert main(["restore", "main-1c", "--to-version", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tradeos: 5 is not a sync version of integration 'main-1c'; latest")

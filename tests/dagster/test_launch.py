"""launch.request_sync without a webserver: validation, fallback to sync_requests, webhook merge.

The launch through a running webserver's GraphQL API is in test_e2e.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tradeos_pipelines.core.integration import IntegrationNotFound
from tradeos_pipelines.core.vocabulary import UnknownEntity
from tradeos_pipelines.devstack.embedded import find_free_port
from tradeos_pipelines.launch import SyncLaunch, request_sync
from tradeos_pipelines.storage.tables import SyncRequest


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    return f"http://127.0.0.1:{find_free_port()}"


def test_rejects_unknown_entities_and_integrations(make_integration) -> None:
    make_integration("main-1c")
    with pytest.raises(UnknownEntity, match=r"'prices'.*nomenclature, stock, orders"):
        request_sync("main-1c", ["stock", "prices"], full=False, source="manual")
    with pytest.raises(UnknownEntity, match="no entities"):
        request_sync("main-1c", [], full=False, source="manual")
    with pytest.raises(IntegrationNotFound, match="'nope'"):
        request_sync("nope", ["stock"], full=False, source="webhook")


def test_manual_request_waits_in_table_when_webserver_is_down(session, make_integration) -> None:
    make_integration("main-1c")
    launch = request_sync(
        "main-1c",
        ["nomenclature", "stock", "nomenclature"],
        full=True,
        source="manual",
        dagster_url=closed_port_url(),
    )
    assert launch.run_ids == [] and launch.request_id is not None
    row = session.get(SyncRequest, launch.request_id)
    assert (row.integration_id, row.entities, row.full, row.source) == (
        "main-1c",
        ["nomenclature", "stock"],
        True,
        "manual",
    )
    assert row.picked_at is None and row.run_ids is None


def test_webhook_burst_folds_into_the_waiting_request(session, make_integration) -> None:
    make_integration("main-1c")
    make_integration("other-1c")
    first = request_sync("main-1c", ["stock"], full=False, source="webhook")
    second = request_sync("main-1c", ["nomenclature", "stock"], full=False, source="webhook")
    other = request_sync("other-1c", ["stock"], full=False, source="webhook")
    full = request_sync("main-1c", ["stock"], full=True, source="webhook")
    assert isinstance(first, SyncLaunch) and first.run_ids == []
    assert second.request_id == first.request_id
    assert other.request_id != first.request_id
    assert full.request_id not in (first.request_id, other.request_id)
    rows = {r.id: r for r in session.scalars(select(SyncRequest))}
    assert len(rows) == 3
    assert rows[first.request_id].entities == ["stock", "nomenclature"]

    # Once the sensor picked a row, a new webhook makes a new row (the picked one is not changed).
    session.get(SyncRequest, first.request_id).picked_at = rows[first.request_id].requested_at
    session.commit()
    third = request_sync("main-1c", ["orders"], full=False, source="webhook")
    assert third.request_id not in rows
    session.expire_all()
    assert session.get(SyncRequest, first.request_id).entities == ["stock", "nomenclature"]

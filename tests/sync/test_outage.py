"""A sync rides out a short 1C outage in the same run, every attempt in the request log."""

from __future__ import annotations

import pytest

from tradeos_pipelines.engine import sync_nomenclature

ITEMS, FOLDERS = 200, 4


# The OData side of the sync tests has no such control yet (docs/1c-odata.md).
pytestmark = pytest.mark.http_service_only(
    "drives the HTTP-service emulator's fault sequence by path"
)


def test_a_1c_restart_mid_sync_is_ridden_out_and_every_attempt_is_logged(
    integration, emulator, sql, bus
):
    sql("UPDATE integrations SET retry_budget_seconds = 120 WHERE id = :id", id=integration)
    # Two 500s ("Превышено количество лицензий"), a 502 page of the web server and a 429 on
    # the first page of the catalogue: what a 1C cluster restart looks like from outside.
    # The waits are real (jitter below 0.5 + 1 + 2 s, then the 1 s Retry-After asks for).
    emulator.control.inject_fault("500", count=2, path="/nomenclature")
    emulator.control.inject_fault("502", path="/nomenclature")
    emulator.control.inject_fault("429", path="/nomenclature", retry_after=1)

    result = sync_nomenclature(integration, publisher=bus, run_id="run-outage")

    assert (result.status, result.fetched, result.created) == (
        "success",
        ITEMS + FOLDERS,
        ITEMS + FOLDERS,
    )
    assert sql("SELECT count(*) FROM products")[0][0] == ITEMS
    logged = sql(
        "SELECT status_code, attempt FROM integration_logs WHERE run_id = 'run-outage' "
        "AND path LIKE '/hs/api/nomenclature%' ORDER BY id"
    )
    pages = (ITEMS + FOLDERS + 49) // 50  # read in pages of 50
    assert [tuple(r) for r in logged] == [
        (500, 1),
        (500, 2),
        (502, 3),
        (429, 4),
        (200, 5),
        *[(200, 1)] * (pages - 1),
    ]
    assert sql("SELECT status, error FROM sync_logs")[0] == ("success", None)

"""A sync rides out a short 1C outage in the same run, every attempt in the request log."""

from __future__ import annotations

import time

from tradeos_pipelines.engine import sync_nomenclature


def test_a_1c_restart_mid_sync_is_ridden_out_and_every_attempt_is_logged(
    integration, onec, sql, bus, fault_report
):
    sql("UPDATE integrations SET retry_budget_seconds = 120 WHERE id = :id", id=integration)
    # Two 500s ("Превышено количество лицензий"), a 502 page of the web server and a 429 on
    # the first page of the catalogue: what a 1C cluster restart looks like from outside.
    # The waits are real (jitter below 0.5 + 1 + 2 s, then the 1 s Retry-After asks for).
    onec.fail_catalogue(500, count=2)
    onec.fail_catalogue(502)
    onec.fail_catalogue(429, retry_after=1)

    started = time.monotonic()
    result = sync_nomenclature(integration, publisher=bus, run_id="run-outage")

    rows = onec.items + onec.folders
    fault_report.record(
        f"1C restarting (500, 500, 502, 429) at the start of a full sync ({onec.protocol})",
        rows_lost=rows - result.created,
        rows_half_written=0 if result.status == "success" else result.created,
        recovered_in_s=time.monotonic() - started,
        recovery="the same sync rode it out and committed everything",
    )
    assert (result.status, result.fetched, result.created) == ("success", rows, rows)
    assert sql("SELECT count(*) FROM products")[0][0] == onec.items
    logged = sql(
        "SELECT status_code, attempt FROM integration_logs WHERE run_id = 'run-outage' "
        "AND path LIKE :catalogue ORDER BY id",
        catalogue=onec.catalogue_log_path,
    )
    # The first catalogue read gets the faults; then the rest, pages of 50, at once.
    reads = (rows + 49) // 50 + onec.catalogue_reads_besides_pages
    assert [tuple(r) for r in logged] == [
        (500, 1),
        (500, 2),
        (502, 3),
        (429, 4),
        (200, 5),
        *[(200, 1)] * (reads - 1),
    ]
    assert sql("SELECT status, error FROM sync_logs")[0] == ("success", None)

"""`tradeos integrations|sync|status|logs` against a real sidecar, PostgreSQL, Redis, 1C emulator.

Commands run in-process (``main``) where only the output and exit code matter, and as their own
process where the process boundary is the point: ``--wait`` following real engine events, an
unreachable sidecar, a terminal that cannot print Cyrillic.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import select

from tradeos_pipelines.cli import main
from tradeos_pipelines.devstack.embedded import find_free_port
from tradeos_pipelines.engine import SyncFailed, sync_nomenclature
from tradeos_pipelines.storage.integrations import load_integration
from tradeos_pipelines.storage.tables import IntegrationLog, SyncLog, SyncRequest

ITEMS, FOLDERS = 200, 4


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``tradeos ARGS`` in this process: (exit code, stdout, stderr)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cli(sidecar, api, admin_token, capsys, monkeypatch):
    """Run ``tradeos`` against the test sidecar (URL and token from the environment)."""
    monkeypatch.setenv("TRADEOS_API_URL", sidecar.base_url)
    monkeypatch.setenv("TRADEOS_TOKEN", admin_token)
    return lambda *args: run(capsys, *args)


def test_add_list_show_an_integration_with_cyrillic_names(cli):
    code, out, err = cli(
        "integrations",
        "add",
        "--name",
        "Основная база",
        "--base-url",
        "http://1c.local/trade/",
        "--username",
        "Администратор",
        "--password",
        "пароль-1",
        "--conflict-policy",
        "manual",
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "integration osnovnaya-baza created (Основная база, http://1c.local/trade)"
    assert lines[1] == "webhook URL path: /api/v1/webhooks/1c/osnovnaya-baza"
    assert lines[2].startswith("webhook secret (shown only now; 1C signs its webhooks with it): ")
    assert len(lines[2].rsplit(": ", 1)[1]) >= 16

    code, out, _ = cli("integrations", "list")
    assert code == 0
    assert out.splitlines() == [
        "ID              ENABLED  POLICY  1C URL                 NAME",
        "osnovnaya-baza  yes      manual  http://1c.local/trade  Основная база",
    ]

    code, out, _ = cli("integrations", "show", "osnovnaya-baza", "--json")
    body = orjson.loads(out)
    assert code == 0
    assert body["integration"]["username"] == "Администратор"
    assert body["integration"]["password"] == "***"
    assert "пароль-1" not in out
    assert body["health"]["status"] == "never_synced"


def test_unknown_integration_exits_2_listing_the_valid_ones(cli, make_integration):
    make_integration("main-1c")
    make_integration("second-1c")
    for args in (
        ("integrations", "show", "nope"),
        ("integrations", "test", "nope"),
        ("integrations", "enable", "nope"),
        ("sync", "nope"),
        ("sync", "nope", "--wait"),
        ("logs", "nope"),
    ):
        code, out, err = cli(*args)
        assert (code, out) == (2, ""), args
        assert err == "tradeos: unknown integration 'nope'; valid: main-1c, second-1c\n", args


def test_unknown_entity_exits_2_with_the_choices(cli, make_integration):
    make_integration("main-1c")
    with pytest.raises(SystemExit) as exit_info:
        cli("sync", "main-1c", "--entity", "prices")
    assert exit_info.value.code == 2


def test_unknown_entity_message_names_the_choices(tradeos_process):
    process = tradeos_process("sync", "main-1c", "--entity", "prices")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert err.decode().splitlines()[-1] == (
        "tradeos sync: error: argument --entity: invalid choice: 'prices' "
        "(choose from 'nomenclature', 'stock', 'orders')"
    )


def test_rejected_field_exits_2_naming_it(cli):
    code, out, err = cli(
        "integrations", "add", "--name", "x", "--base-url", "ftp://1c/trade", "--api-key", "k"
    )
    assert (code, out) == (2, "")
    assert err == (
        "tradeos: base_url: must be an http(s) URL of the 1C publication, "
        "e.g. http://1c.local/trade\n"
    )


def test_unreachable_sidecar_is_one_line_naming_the_url_exit_3(tradeos_process):
    url = f"http://127.0.0.1:{find_free_port()}"
    process = tradeos_process("status", TRADEOS_API_URL=url)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out) == (3, b"")
    lines = err.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"tradeos: sidecar unreachable at {url} (ConnectError: ")


def test_a_wrong_token_exits_2_saying_where_it_came_from(cli, monkeypatch, sidecar):
    monkeypatch.setenv("TRADEOS_TOKEN", "not-a-token")
    code, out, err = cli("integrations", "list")
    assert (code, out) == (2, "")
    assert err == (
        f"tradeos: the sidecar at {sidecar.base_url} refused the token (from TRADEOS_TOKEN): "
        "invalid or revoked token; pass --token or set TRADEOS_TOKEN\n"
    )


def test_connection_test_exit_codes(cli, make_integration, emulator):
    make_integration("main-1c", base_url=emulator.base_url, api_key="test-key")
    make_integration("wrong-key", base_url=emulator.base_url, api_key="bad-secret-value")
    code, out, _ = cli("integrations", "test", "main-1c")
    assert code == 0
    assert out.startswith("main-1c: 1C answers (version ")
    code, out, _ = cli("integrations", "test", "wrong-key", "--json")
    body = orjson.loads(out)
    assert (code, body["ok"]) == (1, False)
    assert "refused the credentials (403)" in body["error"]
    assert "bad-secret-value" not in out


def test_enable_and_disable(cli, make_integration, session):
    make_integration("main-1c")
    assert cli("integrations", "disable", "main-1c") == (0, "main-1c: disabled\n", "")
    code, out, _ = cli("integrations", "show", "main-1c", "--json")
    assert orjson.loads(out)["integration"]["enabled"] is False
    # A disabled integration is not synced: the sidecar's 409, as a usage error.
    code, out, err = cli("sync", "main-1c")
    assert (code, out) == (2, "")
    assert err == "tradeos: integration 'main-1c' is disabled; enable it first\n"
    assert cli("integrations", "enable", "main-1c") == (0, "main-1c: enabled\n", "")


def _wait_for_request(session, timeout: float = 30.0) -> SyncRequest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.expire_all()
        request = session.scalars(select(SyncRequest)).first()
        if request is not None:
            return request
        time.sleep(0.1)
    raise AssertionError("the CLI never asked the sidecar for a sync")


def test_sync_wait_follows_a_real_sync_to_success(
    tradeos_process, make_integration, emulator, session, dagster_down, redis_url
):
    make_integration("main-1c", base_url=emulator.base_url, page_size=50)
    process = tradeos_process("sync", "main-1c", "--entity", "nomenclature", "--wait")
    request = _wait_for_request(session)
    assert (request.entities, request.full, request.source) == (["nomenclature"], False, "manual")
    # What the request sensor's run would do: the engine, publishing to the real event bus.
    result = sync_nomenclature("main-1c")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == (
        f"main-1c: Dagster's webserver did not answer; request {request.id} waits for the "
        "daemon's request sensor"
    )
    assert lines[1] == "  nomenclature: started"
    pages = [f"  nomenclature: {n} of {ITEMS + FOLDERS} rows read" for n in (50, 100, 150, 200)]
    pages.append(f"  nomenclature: {ITEMS + FOLDERS} of {ITEMS + FOLDERS} rows read")
    assert lines[2:7] == pages
    assert lines[7] == (
        f"  nomenclature: success in {result.duration_s:.1f} s "
        f"(fetched {ITEMS + FOLDERS}, created {ITEMS + FOLDERS})"
    )
    assert lines[8:] == ["sync of main-1c finished"]


def test_sync_wait_exits_1_when_the_sync_fails(
    tradeos_process, make_integration, session, dagster_down, redis_url
):
    closed = find_free_port()
    make_integration("main-1c", base_url=f"http://127.0.0.1:{closed}/trade", timeout_seconds=2)
    process = tradeos_process("sync", "main-1c", "--entity", "stock", "--wait", "--json")
    _wait_for_request(session)
    failure: list[SyncFailed] = []

    def sync_stock_in_thread() -> None:
        from tradeos_pipelines.engine import sync_stock

        try:
            sync_stock("main-1c")
        except SyncFailed as exc:
            failure.append(exc)

    worker = threading.Thread(target=sync_stock_in_thread)
    worker.start()
    out, err = process.communicate(timeout=120)
    worker.join(60)
    assert process.returncode == 1, err.decode()
    body = orjson.loads(out)
    log = session.get(SyncLog, failure[0].sync_log_id)
    assert body["finished"] is True
    assert body["entities"]["stock"]["status"] == "failed"
    assert body["entities"]["stock"]["error"] == log.error
    assert body["entities"]["stock"]["sync_log_id"] == log.id


def test_sync_wait_gives_up_after_the_timeout(tradeos_process, make_integration, dagster_down):
    make_integration("main-1c")
    process = tradeos_process("sync", "main-1c", "--entity", "stock", "--wait", "--timeout", "1")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.decode() == "tradeos: gave up waiting after 1 s for: stock\n"


def _log(session, entity: str, status: str, started: datetime, error: str | None = None) -> int:
    row = SyncLog(
        integration_id="main-1c",
        entity=entity,
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=2),
        fetched=10,
        created=3,
        updated=1,
        error=error,
    )
    session.add(row)
    session.commit()
    return row.id


def test_status_shows_last_sync_streak_and_breaker(cli, make_integration, session):
    make_integration("main-1c", name="Основная база")
    now = datetime.now(UTC)
    _log(session, "stock", "success", now - timedelta(hours=2))
    _log(session, "stock", "failed", now - timedelta(hours=1), "1C: 1C unavailable")
    _log(session, "stock", "failed", now - timedelta(minutes=30), "1C: 1C unavailable")
    _log(session, "nomenclature", "success", now - timedelta(minutes=10))
    code, out, _ = cli("status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "main-1c (Основная база): failing"
    # The integration's streak counts failures newest first over every entity: the newest
    # sync (nomenclature) succeeded; stock's own streak is 2.
    assert lines[1] == "  breaker closed, failure streak 0, enabled yes"
    header, nomenclature, stock = lines[2:5]
    assert header.split() == [
        "ENTITY",
        "LAST",
        "AT",
        "LAST",
        "SUCCESS",
        "STREAK",
        "QUEUED",
        "ERROR",
    ]
    assert nomenclature.split()[:2] == ["nomenclature", "success"]
    assert nomenclature.split()[-2:] == ["0", "no"]
    assert stock.split()[:2] == ["stock", "failed"]
    assert stock.endswith("  2       no      1C: 1C unavailable")
    code, out, _ = cli("status", "--json")
    body = orjson.loads(out)
    assert body[0]["entities"]["stock"]["error_streak"] == 2


def test_logs_failed_since_and_json(cli, make_integration, session):
    make_integration("main-1c")
    now = datetime.now(UTC)
    old_failure = _log(session, "stock", "failed", now - timedelta(days=2), "old")
    _log(session, "stock", "success", now - timedelta(hours=3))
    recent_failure = _log(session, "nomenclature", "failed", now - timedelta(hours=1), "новая")
    code, out, _ = cli("logs", "main-1c", "--failed", "--json")
    assert code == 0
    assert [r["id"] for r in orjson.loads(out)] == [recent_failure, old_failure]
    code, out, _ = cli("logs", "main-1c", "--failed", "--since", "24h", "--json")
    assert [r["id"] for r in orjson.loads(out)] == [recent_failure]
    code, out, _ = cli("logs", "main-1c", "--since", "24h")
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[1].split()[0] == str(recent_failure)
    assert lines[1].endswith("failed   2.0      10 read, 3+ 1~ 0!  новая")
    code, out, err = cli("logs", "main-1c", "--since", "yesterday")
    assert (code, out) == (2, "")
    assert err == (
        "tradeos: --since 'yesterday': expected a duration such as 30m, 24h, 7d or an ISO "
        "date-time such as 2026-12-01T09:00+03:00\n"
    )


def test_logs_of_1c_requests(cli, make_integration, session):
    make_integration("main-1c")
    for status_code, error in ((200, None), (503, "1C busy"), (None, "ConnectError")):
        session.add(
            IntegrationLog(
                integration_id="main-1c",
                method="GET",
                path="/hs/api/stock",
                status_code=status_code,
                duration_ms=12.5,
                error=error,
            )
        )
    session.commit()
    code, out, _ = cli("logs", "main-1c", "--requests", "--json")
    assert code == 0
    assert [r["status_code"] for r in orjson.loads(out)] == [None, 503, 200]
    code, out, _ = cli("logs", "main-1c", "--requests", "--failed")
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[1].split()[3:] == ["GET", "-", "12", "1", "/hs/api/stock", "ConnectError"]
    assert lines[2].split()[3:] == ["GET", "503", "12", "1", "/hs/api/stock", "1C", "busy"]


def test_cyrillic_survives_a_terminal_that_cannot_encode_it(tradeos_process, make_integration):
    make_integration("main-1c", name="Основная база — склад №1")
    process = tradeos_process("integrations", "list", PYTHONIOENCODING="latin-1")
    out, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (0, b"")
    assert out.decode("utf-8").splitlines()[1].endswith("Основная база — склад №1")


def test_add_reads_a_password_from_standard_input(tradeos_process, session):
    process = tradeos_process(
        "integrations",
        "add",
        "--name",
        "Склад",
        "--base-url",
        "http://1c/trade",
        "--username",
        "Администратор",
        "--password",
        "-",
        "--json",
    )
    out, err = process.communicate(input="секрет-из-stdin\n".encode(), timeout=60)
    assert process.returncode == 0, err.decode()
    body = orjson.loads(out)
    assert (body["id"], body["username"], body["password"]) == ("sklad", "Администратор", "***")
    assert load_integration(session, "sklad").password == "секрет-из-stdin"


def test_add_without_credentials_is_bad_usage(cli):
    code, out, err = cli("integrations", "add", "--name", "x", "--base-url", "http://1c/trade")
    assert (code, out) == (2, "")
    assert err == "tradeos: give --api-key KEY, or --username USER --password PASS\n"

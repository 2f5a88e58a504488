"""`tradeos` command line: one clear line and the right exit code for bad settings, busy ports."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.stack.conftest import run_tradeos, stack_env
from tradeos_pipelines.cli import main
from tradeos_pipelines.devstack.embedded import find_free_port


def test_malformed_port_setting_exits_2_naming_it(tmp_path: Path) -> None:
    result = run_tradeos(["dev"], stack_env(tmp_path / "data", TRADEOS_API_PORT="abc"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "TRADEOS_API_PORT" in lines[0]
    assert not (tmp_path / "data").exists()  # nothing was started or created


def test_malformed_secret_key_exits_2_naming_it(tmp_path: Path) -> None:
    result = run_tradeos(["dev"], stack_env(tmp_path / "data", TRADEOS_SECRET_KEY="not-a-key"))
    assert result.returncode == 2
    assert "TRADEOS_SECRET_KEY" in result.stderr
    assert "not-a-key" not in result.stderr  # a secret is never echoed back


def test_port_taken_is_named_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_tradeos(["dev"], stack_env(tmp_path / "data", TRADEOS_DAGSTER_PORT=str(port)))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port}" in lines[0]
    assert "TRADEOS_DAGSTER_PORT" in lines[0]
    assert not (tmp_path / "data").exists()


def test_same_port_for_two_settings_is_refused(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "data")
    env["TRADEOS_WS_PORT"] = env["TRADEOS_API_PORT"]
    result = run_tradeos(["dev"], env)
    assert result.returncode == 1
    assert "TRADEOS_API_PORT" in result.stderr and "TRADEOS_WS_PORT" in result.stderr


def test_unreachable_database_is_named(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        env = stack_env(
            tmp_path / "data",
            TRADEOS_DATABASE_URL=f"postgresql://nobody:hunter2@127.0.0.1:{port}/x",
        )
        result = run_tradeos(["dev"], env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert any("TRADEOS_DATABASE_URL" in line and str(port) in line for line in lines), lines
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_unreachable_redis_is_named(tmp_path: Path, server_urls) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env = stack_env(
            tmp_path / "data",
            TRADEOS_DATABASE_URL=server_urls[0],
            TRADEOS_REDIS_URL=f"redis://127.0.0.1:{port}/0",
        )
        result = run_tradeos(["dev"], env)
    assert result.returncode == 1
    assert "TRADEOS_REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_secret_key_prints_a_fernet_key(capsys) -> None:
    assert main(["secret-key"]) == 0
    Fernet(capsys.readouterr().out.strip().encode())  # raises if malformed


def test_migrate_without_database_url_explains(monkeypatch, capsys) -> None:
    monkeypatch.delenv("TRADEOS_DATABASE_URL", raising=False)
    assert main(["migrate"]) == 2
    assert "TRADEOS_DATABASE_URL" in capsys.readouterr().err


def test_migrate_and_tokens_against_a_real_database(server_urls, monkeypatch, capsys) -> None:
    admin_url = server_urls[0]
    name = f"tradeos_cli_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        monkeypatch.setenv("TRADEOS_DATABASE_URL", url)

        assert main(["migrate"]) == 0
        assert "head" in capsys.readouterr().out

        assert main(["token", "create", "ci robot"]) == 0
        token = capsys.readouterr().out.strip()
        assert token.startswith("tos_")

        assert main(["token", "list"]) == 0
        listed = capsys.readouterr().out
        assert "ci robot" in listed and token not in listed
        token_id = listed.strip().splitlines()[-1].split()[0]

        assert main(["token", "revoke", token_id]) == 0
        assert "revoked" in capsys.readouterr().out
        assert main(["token", "list"]) == 0
        assert "revoked" in capsys.readouterr().out
        assert main(["token", "revoke", "999999"]) == 1
        assert "999999" in capsys.readouterr().err
        assert main(["token", "create", "  "]) == 2

        assert main(["migrate", "--downgrade", "base"]) == 0
        engine = create_engine(url)
        with engine.connect() as conn:
            tables = conn.execute(
                text(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            ).scalar()
        engine.dispose()
        assert tables == 0
    finally:
        from tradeos_pipelines.storage.database import get_engine

        get_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_emulator_command_serves_the_1c_contract(tmp_path: Path) -> None:
    port = find_free_port()
    args = ["emulator", "--port", str(port), "--items", "20", "--api-key", "k"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradeos_pipelines.cli", *args],
        env=stack_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/trade/hs/api/nomenclature?limit=5",
                    headers={"X-API-Key": "k"},
                    timeout=2,
                )
                break
            except httpx.HTTPError:
                assert proc.poll() is None, "the emulator exited"
                assert time.monotonic() < deadline, "the emulator did not answer"
                time.sleep(0.3)
        assert answer.status_code == 200
        assert len(answer.json()["items"]) == 5
    finally:
        proc.terminate()
        proc.wait(10)

"""The embedded PostgreSQL and Redis start, answer, keep their data and stop without leftovers."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
import redis
from sqlalchemy import create_engine, text

from tradeos_pipelines.devstack.embedded import start_postgres_server, start_redis_server


def _descendants_alive(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return []
    return [p for p in [root, *root.children(recursive=True)] if p.is_running()]


def test_postgres_starts_answers_keeps_data_and_stops(tmp_path: Path) -> None:
    server = start_postgres_server(tmp_path / "pg")
    try:
        assert server.url.startswith("postgresql+psycopg2://postgres:")
        engine = create_engine(server.url)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            conn.execute(text("CREATE TABLE kept (name text)"))
            conn.execute(text("INSERT INTO kept VALUES ('Номенклатура')"))
        engine.dispose()
        tree = _descendants_alive(server.pid)
        assert len(tree) > 1  # the postmaster and its helper processes
    finally:
        server.stop()
    assert not [p for p in tree if p.is_running()]

    # The same data folder is reused on the next start (new port, same rows).
    again = start_postgres_server(tmp_path / "pg")
    try:
        engine = create_engine(again.url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM kept")).scalar() == "Номенклатура"
        engine.dispose()
    finally:
        again.stop()
    assert again.process.poll() is not None


def test_redis_starts_answers_and_stops(tmp_path: Path) -> None:
    server = start_redis_server(tmp_path / "redis")
    try:
        assert server.url.startswith("redis://:")
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
    finally:
        server.stop()
    assert server.process.poll() is not None
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()


def test_stop_is_idempotent(tmp_path: Path) -> None:
    server = start_redis_server(tmp_path / "redis")
    server.stop()
    server.stop()
    assert server.process.returncode is not None

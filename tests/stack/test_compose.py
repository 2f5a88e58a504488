"""docker-compose.yml is production-shaped: the services, ports, health checks, volumes and env.

No Docker engine runs here, so this checks the file's structure (as `docker compose config`
would see it after YAML anchors are merged) and that the commands point at real modules.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradeos_pipelines.core.settings import PROJECT_ROOT

SERVICES = {
    "postgres",
    "redis",
    "mock-1c",
    "user-code",
    "dagster-webserver",
    "dagster-daemon",
    "sidecar",
}
APP_SERVICES = {"user-code", "dagster-webserver", "dagster-daemon", "sidecar"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def _published(service: dict[str, Any]) -> set[int]:
    # "127.0.0.1:8000:8000" or "8000:8000": the host port is the one before the container's.
    return {int(str(p).split(":")[-2]) for p in service.get("ports", [])}


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def test_every_service_is_there_with_a_health_check(compose) -> None:
    services = compose["services"]
    assert set(services) >= SERVICES
    for name in SERVICES:
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"


def test_ports_are_published(compose) -> None:
    services = compose["services"]
    assert _published(services["sidecar"]) == {8000, 8001}
    assert _published(services["dagster-webserver"]) == {3000}
    assert _published(services["mock-1c"]) == {8080}
    # The gRPC server and the databases stay on the compose network.
    assert not _published(services["user-code"])
    assert not _published(services["postgres"])


def test_named_volumes_keep_the_data(compose) -> None:
    declared = set(compose["volumes"])
    services = compose["services"]
    for name, mount in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        volumes = [str(v) for v in services[name]["volumes"]]
        named = [v.split(":")[0] for v in volumes if v.endswith(mount) or f":{mount}" in v]
        assert named and named[0] in declared, f"{name} keeps {mount} in a named volume"


def test_one_dockerfile_builds_every_app_service(compose) -> None:
    services = compose["services"]
    builds = {
        name: services[name]["build"]
        for name in APP_SERVICES | {"mock-1c"}
        if "build" in services[name]
    }
    assert set(builds) == APP_SERVICES | {"mock-1c"}
    assert {b["dockerfile"] for b in builds.values()} == {"Dockerfile"}
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "uv.lock" in dockerfile and "uv sync --frozen" in dockerfile


def test_environment_wiring(compose) -> None:
    services = compose["services"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        for key in (
            "TRADEOS_DATABASE_URL",
            "TRADEOS_REDIS_URL",
            "TRADEOS_DAGSTER_DATABASE_URL",
            "DAGSTER_HOME",
            "TRADEOS_SECRET_KEY",
        ):
            assert env.get(key), f"{name} lacks {key}"
        assert env["TRADEOS_DATABASE_URL"].startswith("postgresql+psycopg2://")
        assert env["TRADEOS_DAGSTER_DATABASE_URL"].startswith("postgresql+psycopg2://")
        assert "@postgres:5432/" in env["TRADEOS_DATABASE_URL"]
        assert env["TRADEOS_REDIS_URL"].startswith("redis://redis:6379")
        # The secret key must come from the operator: `${VAR:?message}`, never `${VAR:-default}`.
        assert re.fullmatch(r"\$\{TRADEOS_SECRET_KEY:\?[^}]*\}", env["TRADEOS_SECRET_KEY"])
        assert env["TRADEOS_ENV"] == "production"
    assert services["sidecar"]["environment"]["TRADEOS_API_HOST"] == "0.0.0.0"


def test_dagster_layout(compose) -> None:
    services = compose["services"]
    code_server = _command(services["user-code"])
    assert code_server[:3] == ["dagster", "code-server", "start"]
    assert "4000" in code_server and "tradeos_pipelines.definitions" in code_server
    assert importlib.util.find_spec("tradeos_pipelines.definitions") is not None

    workspace_path = _command(services["dagster-webserver"])[-1]
    assert _command(services["dagster-daemon"])[-1] == workspace_path
    workspace = yaml.safe_load((PROJECT_ROOT / workspace_path).read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    assert (grpc["host"], int(grpc["port"])) == ("user-code", 4000)

    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "DAGSTER_HOME" in dockerfile and "dagster.yaml" in dockerfile
    for name in ("dagster-webserver", "dagster-daemon"):
        assert "user-code" in services[name]["depends_on"]


def test_commands_point_at_real_modules(compose) -> None:
    services = compose["services"]
    assert _command(services["sidecar"]) == ["python", "-m", "api"]
    assert (PROJECT_ROOT / "api" / "__main__.py").exists()
    emulator = _command(services["mock-1c"])
    assert "tradeos_pipelines.emulators.http_service" in emulator and "8080" in emulator
    assert (PROJECT_ROOT / "tradeos_pipelines/emulators/http_service/__main__.py").exists()
    assert (PROJECT_ROOT / "docker/postgres-init.sql").exists()
    # The Dagster UI runs behind the guard, answering the name the sidecar uses for it.
    webserver = services["dagster-webserver"]
    assert _command(webserver)[:3] == ["python", "-m", "tradeos_pipelines.dagster_ui"]
    assert (PROJECT_ROOT / "tradeos_pipelines/dagster_ui/__main__.py").exists()
    assert webserver["environment"]["TRADEOS_DAGSTER_ALLOWED_HOSTS"] == '["dagster-webserver"]'
    assert webserver["environment"]["TRADEOS_DAGSTER_URL"] == "http://dagster-webserver:3000"


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = set((PROJECT_ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".tradeos", ".git", ".env"} <= ignored
    assert Path(PROJECT_ROOT / "Dockerfile").exists()

"""The Dagster UI behind the TradeOS guard (issue #13, item 4), as a real webserver process.

``python -m tradeos_pipelines.dagster_ui`` is dagster-webserver with its app wrapped; these
tests send what an attacker's page would make the operator's browser send (a GET mutation,
a cross-site form post, a rebound DNS name) and what the sidecar and the UI send, and check
that only the latter reach Dagster. The sensor's state, read back as the UI reads it, shows
whether a refused mutation ran.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.dagster.processes import dagster_processes
from tradeos_pipelines.defs.sensors.changes import CHANGES_SENSOR
from tradeos_pipelines.launch import LOCATION_NAME, REPOSITORY_NAME
from tradeos_pipelines.storage.tokens import create_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SENSOR = CHANGES_SENSOR
STOP_SENSOR = 'mutation { stopSensor(id: "%s") { __typename } }'
SELECTOR = {
    "repositoryLocationName": LOCATION_NAME,
    "repositoryName": REPOSITORY_NAME,
    "sensorName": SENSOR,
}


SENSOR_STATUS = """query Status($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) { ... on Sensor { id sensorState { status } } }
}"""


def _sensor(url: str) -> dict:
    """The change sensor's id and status as the UI reads them (a query over GET)."""
    answer = httpx.get(
        f"{url}/graphql",
        params={"query": SENSOR_STATUS, "variables": json.dumps({"selector": SELECTOR})},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    sensor = answer.json()["data"]["sensorOrError"]
    return {"id": sensor["id"], "status": sensor["sensorState"]["status"]}


def _running_sensor(url: str) -> dict:
    """The change sensor, started first if an earlier test stopped it (Dagster keeps that)."""
    sensor = _sensor(url)
    if sensor["status"] != "RUNNING":
        start = "mutation S($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }"
        body = {"query": start, "variables": {"s": SELECTOR}}
        assert httpx.post(f"{url}/graphql", json=body, timeout=120).status_code == 200
        sensor = _sensor(url)
    assert sensor["status"] == "RUNNING"
    return sensor


def _stop_sensor_by_post(url: str, sensor_id: str, **headers: str) -> httpx.Response:
    """The UI's toggle: a same-origin JSON POST."""
    body = {"query": STOP_SENSOR % sensor_id}
    return httpx.post(f"{url}/graphql", json=body, headers=headers, timeout=120)


@pytest.fixture
def webserver(instance, tmp_path):
    with dagster_processes(tmp_path / "logs", daemon=False) as dagster:
        yield dagster.url


def test_a_cross_site_get_mutation_does_not_stop_a_sensor(webserver):
    sensor = _running_sensor(webserver)

    # What <img src="http://127.0.0.1:3000/graphql?query=mutation{stopSensor…}"> sends.
    answer = httpx.get(
        f"{webserver}/graphql", params={"query": STOP_SENSOR % sensor["id"]}, timeout=30
    )
    assert (answer.status_code, answer.json()) == (
        405,
        {"error": "GraphQL mutations and subscriptions must be sent with POST"},
    )
    # A form post with the mutation in the URL (Dagster reads the query string for text/plain).
    form = httpx.post(
        f"{webserver}/graphql",
        params={"query": STOP_SENSOR % sensor["id"]},
        content=b"x=1",
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    assert (form.status_code, form.json()) == (
        415,
        {"error": "GraphQL POST bodies must be application/json"},
    )
    assert _sensor(webserver)["status"] == "RUNNING"

    # The same mutation as the UI sends it does stop the sensor: the refusals above mattered.
    assert _stop_sensor_by_post(webserver, sensor["id"]).status_code == 200
    assert _sensor(webserver)["status"] == "STOPPED"


def test_another_origin_and_a_rebound_host_are_refused(webserver):
    own = urlsplit(webserver).netloc
    sensor = _running_sensor(webserver)
    cross = _stop_sensor_by_post(webserver, sensor["id"], Origin="http://evil.example")
    assert (cross.status_code, cross.json()) == (
        403,
        {"error": "cross-origin request from 'http://evil.example' refused"},
    )
    # DNS rebinding: the attacker's name now resolves to 127.0.0.1; its Host comes along.
    rebound = httpx.get(f"{webserver}/runs", headers={"Host": "evil.example:3000"}, timeout=30)
    assert rebound.status_code == 421
    assert rebound.json()["error"].startswith("Host 'evil.example:3000' is not served here")
    assert _sensor(webserver)["status"] == "RUNNING"

    # The UI's own origin and the other loopback names pass.
    page = httpx.get(f"{webserver}/runs", headers={"Host": f"localhost:{own.split(':')[1]}"})
    assert page.status_code == 200 and "<html" in page.text.lower()
    same = _stop_sensor_by_post(webserver, sensor["id"], Origin=f"http://{own}")
    assert same.status_code == 200
    assert _sensor(webserver)["status"] == "STOPPED"


def test_with_a_required_token_only_admin_tokens_get_in(dagster_home, tmp_path, db):
    admin = create_token("dagster-admin", scopes=["admin"], database_url=db)
    reader = create_token("dagster-reader", scopes=["read"], database_url=db)
    env = {"TRADEOS_DAGSTER_REQUIRE_TOKEN": "true"}
    with dagster_processes(tmp_path / "logs", env, daemon=False) as dagster:
        url = dagster.url
        assert httpx.get(f"{url}/server_info").status_code == 200  # health checks stay open
        for headers in ({}, {"Authorization": f"Bearer {reader}"}, {"Authorization": "Bearer x"}):
            refused = httpx.post(
                f"{url}/graphql", json={"query": "{ version }"}, headers=headers, timeout=30
            )
            assert (refused.status_code, refused.json()) == (
                401,
                {"error": "an admin API token is required: Authorization: Bearer <token>"},
            )

        # A browser is sent to the login page, and back where it was going after it.
        page = httpx.get(f"{url}/runs?view=all", headers={"Accept": "text/html"})
        assert (page.status_code, page.headers["location"]) == (
            303,
            f"/tradeos/login?next={quote('/runs?view=all', safe='')}",
        )
        wrong = httpx.post(f"{url}/tradeos/login", data={"token": reader, "next": "/runs"})
        assert wrong.status_code == 401 and "Токен не подошёл" in wrong.text
        login = httpx.post(
            f"{url}/tradeos/login", data={"token": admin, "next": "//evil.example/x"}
        )
        assert (login.status_code, login.headers["location"]) == (303, "/")
        cookie = login.headers["set-cookie"]
        assert cookie == (f"tradeos_dagster_token={admin}; Path=/; HttpOnly; SameSite=Strict")
        with httpx.Client(base_url=url, cookies={"tradeos_dagster_token": admin}) as browser:
            assert browser.get("/runs", headers={"Accept": "text/html"}).status_code == 200
        version = httpx.post(
            f"{url}/graphql",
            json={"query": "{ version }"},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=60,
        )
        assert version.status_code == 200 and set(version.json()["data"]) == {"version"}

"""Start sync runs on request: "sync now" from the admin app, webhooks from 1C.

The sidecar calls :func:`request_sync`. A manual request is launched at once through the
Dagster webserver's GraphQL API, so the runs appear in the UI and their ids go back to the
person who clicked. When the webserver cannot be reached, and always for webhooks, the request
is written to ``sync_requests``; the request sensor turns it into runs within a few seconds of
the daemon running, so a request is never lost while Dagster is down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tradeos_pipelines.core.integration import IntegrationNotFound
from tradeos_pipelines.core.settings import get_settings, today_in_schedule_timezone
from tradeos_pipelines.core.vocabulary import (
    INTEGRATION_PARTITIONS,
    JOB_FOR_ENTITY,
    Entity,
    partition_tags,
    run_tags,
    validate_entities,
)
from tradeos_pipelines.storage.database import session_scope
from tradeos_pipelines.storage.tables import Integration, SyncRequest

log = logging.getLogger(__name__)

# Names the code location has in workspace.yaml (and in docker-compose's gRPC workspace).
LOCATION_NAME = "tradeos_pipelines"
# A `Definitions` object is served as this single repository.
REPOSITORY_NAME = "__repository__"
# A webserver that does not answer quickly is treated as down: the request waits in the table.
CONNECT_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_S = 30.0

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

ADD_DYNAMIC_PARTITION = """
mutation AddPartition($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on Error { message }
  }
}
"""


class LaunchError(RuntimeError):
    """Dagster answered but refused to start a run; the message says why."""


@dataclass(frozen=True)
class SyncLaunch:
    """What became of a request: runs started now, and/or a queued ``sync_requests`` row."""

    run_ids: list[str] = field(default_factory=list)
    request_id: int | None = None


class DagsterUnreachable(Exception):
    """The webserver did not answer (connection refused, timeout, 5xx)."""


def request_sync(
    integration_id: str,
    entities: list[str],
    *,
    full: bool,
    source: Literal["manual", "webhook"],
    database_url: str | None = None,
    dagster_url: str | None = None,
) -> SyncLaunch:
    """Start (manual) or queue (webhook) sync runs of ``entities`` for one integration.

    Raises :class:`~tradeos_pipelines.core.vocabulary.UnknownEntity` for a bad entity name,
    :class:`~tradeos_pipelines.core.integration.IntegrationNotFound` for an unknown
    integration and :class:`LaunchError` when Dagster refuses a run.
    """
    wanted = validate_entities(entities)
    if source not in ("manual", "webhook"):
        raise ValueError(f"unknown source {source!r}; expected 'manual' or 'webhook'")
    with session_scope(database_url) as session:
        if session.get(Integration, integration_id) is None:
            raise IntegrationNotFound(f"integration {integration_id!r} does not exist")
        if source == "webhook":
            request_id = _queue_request(session, integration_id, wanted, full, source)
            return SyncLaunch(request_id=request_id)

    url = (dagster_url or get_settings().dagster_url).rstrip("/") + "/graphql"
    run_ids: list[str] = []
    token = get_settings().dagster_token
    # A Dagster UI that requires a token (TRADEOS_DAGSTER_REQUIRE_TOKEN) gets the sidecar's.
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    with httpx.Client(timeout=timeout, headers=headers) as http:
        try:
            _ensure_partition(http, url, integration_id)
            day = today_in_schedule_timezone()
            for entity in wanted:
                run_ids.append(_launch_run(http, url, integration_id, entity, full, day))
        except DagsterUnreachable as exc:
            pending = wanted[len(run_ids) :]
            log.warning(
                "Dagster webserver unreachable (%s); queued %s for %s", exc, pending, integration_id
            )
            with session_scope(database_url) as session:
                request_id = _queue_request(session, integration_id, pending, full, source)
            return SyncLaunch(run_ids=run_ids, request_id=request_id)
    return SyncLaunch(run_ids=run_ids)


def waiting_entities(session: Session, integration_id: str) -> dict[str, datetime]:
    """Entities of ``integration_id`` with a request the request sensor has not picked yet,
    each with when its newest such request was made."""
    rows = session.execute(
        select(SyncRequest.entities, SyncRequest.requested_at).where(
            SyncRequest.integration_id == integration_id, SyncRequest.picked_at.is_(None)
        )
    )
    waiting: dict[str, datetime] = {}
    for entities, requested_at in rows:
        for entity in entities:
            waiting[entity] = max(waiting.get(entity, requested_at), requested_at)
    return waiting


def _queue_request(
    session: Session, integration_id: str, entities: list[Entity], full: bool, source: str
) -> int:
    """Write a request for the sensor; a burst of webhooks folds into the one still waiting.

    The merge only touches a row the sensor has not picked (``picked_at IS NULL``); the sensor
    locks rows while picking, so an entity is never added to a row after it was read.
    """
    if source == "webhook":
        pending_id = session.scalars(
            select(SyncRequest.id)
            .where(
                SyncRequest.integration_id == integration_id,
                SyncRequest.source == "webhook",
                SyncRequest.full.is_(full),
                SyncRequest.picked_at.is_(None),
            )
            .order_by(SyncRequest.id.desc())
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if pending_id is not None:
            current = session.scalars(
                select(SyncRequest.entities).where(SyncRequest.id == pending_id)
            ).one()
            merged = list(dict.fromkeys([*current, *entities]))
            session.execute(
                update(SyncRequest).where(SyncRequest.id == pending_id).values(entities=merged)
            )
            return pending_id
    row = SyncRequest(
        integration_id=integration_id, entities=list(entities), full=full, source=source
    )
    session.add(row)
    session.flush()
    return row.id


def _graphql(http: httpx.Client, url: str, query: str, variables: dict[str, Any]) -> Any:
    try:
        response = http.post(url, json={"query": query, "variables": variables})
    except httpx.TransportError as exc:
        raise DagsterUnreachable(f"{type(exc).__name__} at {url}") from exc
    if response.status_code >= 500 or response.status_code in (404, 502, 503, 504):
        raise DagsterUnreachable(f"HTTP {response.status_code} from {url}")
    body = response.json()
    if body.get("errors"):
        messages = "; ".join(e.get("message", "?") for e in body["errors"])
        raise LaunchError(f"Dagster GraphQL error: {messages}")
    return body["data"]


def _repository_selector() -> dict[str, str]:
    return {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY_NAME}


def _ensure_partition(http: httpx.Client, url: str, integration_id: str) -> None:
    """Add the integration's partition now rather than wait for the reconciliation sensor."""
    data = _graphql(
        http,
        url,
        ADD_DYNAMIC_PARTITION,
        {
            "selector": _repository_selector(),
            "name": INTEGRATION_PARTITIONS,
            "key": integration_id,
        },
    )
    result = data["addDynamicPartition"]
    if result["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
        detail = result.get("message", result["__typename"])
        raise LaunchError(f"could not add partition {integration_id!r}: {detail}")


def _launch_run(
    http: httpx.Client, url: str, integration_id: str, entity: Entity, full: bool, day: date
) -> str:
    tags = {
        **run_tags(integration_id, entity, full=full, source="manual"),
        **partition_tags(integration_id, entity, day),
    }
    params = {
        "selector": {**_repository_selector(), "jobName": JOB_FOR_ENTITY[entity]},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
    }
    result = _graphql(http, url, LAUNCH_RUN, {"executionParams": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        detail = result.get("message") or "; ".join(e["message"] for e in result.get("errors", []))
        raise LaunchError(
            f"Dagster refused the {entity} run for {integration_id!r}: "
            f"{result['__typename']}: {detail}"
        )
    return str(result["run"]["runId"])

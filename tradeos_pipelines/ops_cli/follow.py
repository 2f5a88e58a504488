"""``tradeos sync --wait``: follow the runs a sync started over the sidecar's WebSocket.

The socket is opened on ``sync_updates`` and ``runs`` *before* the sync is requested, so no
event of the new runs can be missed. An entity is finished when the engine says
``sync.finished`` / ``sync.failed`` for it, or when its Dagster run ends (``run.*`` from the
sidecar's run watcher: a run can fail before the engine starts). The ``orders`` run first
exports TradeOS orders (entity ``order_export``), then reads statuses (``orders``); a failed
export ends it.

When the sidecar had to queue the request (Dagster unreachable), no run ids are known yet:
events are then matched by integration and entity.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from tradeos_pipelines.core.vocabulary import ORDER_EXPORT, ROW_COUNTERS
from tradeos_pipelines.ops_cli.client import SidecarUnreachable, Target

CHANNELS = "sync_updates,runs"
RUN_ENDS = {"run.succeeded": "success", "run.failed": "failed", "run.canceled": "canceled"}
# A dropped socket is reopened this many times (replaying from the last event seen).
RECONNECTS = 5


@dataclass
class EntityOutcome:
    """What became of one requested entity."""

    entity: str
    status: str = "waiting"  # waiting | running | success | partial | failed | canceled
    processed: int | None = None
    total: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    duration_s: float | None = None
    error: str | None = None
    run_id: str | None = None
    sync_log_id: int | None = None

    @property
    def done(self) -> bool:
        return self.status in ("success", "partial", "failed", "canceled")

    @property
    def ok(self) -> bool:
        return self.status in ("success", "partial")


class EventStream:
    """A WebSocket on the sidecar's ``/ws`` that reopens itself after a drop."""

    def __init__(self, target: Target, channels: str = CHANNELS) -> None:
        self.target = target
        self.channels = channels
        self.last_event_id: str | None = None
        self._since_id = f"{int(time.time() * 1000) - 1000}-0"
        self._ws: ClientConnection | None = None

    def open(self) -> None:
        """Connect (or reconnect, replaying what was missed); wait for the welcome."""
        query = {"channels": self.channels, "token": self.target.token or ""}
        if self._ws is not None:
            query["last_event_id"] = self.last_event_id or self._since_id
        url = f"{self.target.ws_url}?{urlencode(query)}"
        try:
            self._ws = connect(url, open_timeout=10, close_timeout=2, max_size=1 << 20)
        except (OSError, TimeoutError, InvalidStatus, InvalidURI) as exc:
            raise SidecarUnreachable(
                f"sidecar WebSocket unreachable at {self.target.ws_url} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        welcome = self._recv(10.0)
        if welcome is None or welcome.get("type") != "welcome":
            raise SidecarUnreachable(
                f"the sidecar at {self.target.ws_url} closed the WebSocket "
                "(a wrong or revoked token closes it with 1008)"
            )

    def _recv(self, timeout: float) -> dict[str, Any] | None:
        assert self._ws is not None
        try:
            raw = self._ws.recv(timeout=timeout)
        except TimeoutError:
            return {}
        except ConnectionClosed:
            return None
        return orjson.loads(raw)

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event (``{}`` when none came within ``timeout``), reconnecting on a drop."""
        for _ in range(RECONNECTS + 1):
            message = self._recv(timeout)
            if message is not None:
                if "id" in message and "channel" in message:
                    self.last_event_id = message["id"]
                    return message
                return {}
            time.sleep(0.5)
            self.open()
        raise SidecarUnreachable(f"the WebSocket at {self.target.ws_url} keeps closing")

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()


class SyncFollower:
    """Folds sync and run events of one integration into per-entity outcomes."""

    def __init__(self, integration_id: str, entities: list[str]) -> None:
        self.integration_id = integration_id
        self.outcomes = {e: EntityOutcome(e) for e in entities}
        self.run_ids: set[str] = set()

    @property
    def done(self) -> bool:
        return all(o.done for o in self.outcomes.values())

    def expect_runs(self, run_ids: list[str]) -> None:
        """Only these runs' events count (none known: match by integration and entity)."""
        self.run_ids.update(run_ids)

    def apply(self, event: dict[str, Any]) -> EntityOutcome | None:
        """Take one event; the outcome it changed, if any."""
        data = event.get("data") or {}
        if data.get("integration_id") != self.integration_id:
            return None
        run_id = data.get("run_id")
        if self.run_ids and run_id not in self.run_ids:
            return None
        logged = data.get("entity")
        entity = "orders" if logged == ORDER_EXPORT else logged
        outcome = self.outcomes.get(entity)  # type: ignore[arg-type]
        if outcome is None or outcome.done:
            return None
        kind = event.get("type")
        before = (outcome.status, outcome.processed)
        outcome.run_id = outcome.run_id or run_id
        if kind == "sync.started" or kind == "run.started":
            outcome.status = "running"
        elif kind == "sync.progress":
            outcome.status = "running"
            outcome.processed, outcome.total = data.get("processed"), data.get("total")
        elif kind == "sync.failed":
            outcome.status, outcome.error = "failed", data.get("error")
            outcome.sync_log_id = data.get("sync_log_id")
            if logged == ORDER_EXPORT:
                outcome.error = f"order export: {outcome.error}"
        elif kind == "sync.finished":
            if logged == ORDER_EXPORT:
                return None  # the status read of the same run follows
            outcome.status = data.get("status") or "success"
            outcome.counts = {k: data[k] for k in ROW_COUNTERS if k in data}
            outcome.duration_s = data.get("duration_s")
            outcome.sync_log_id = data.get("sync_log_id")
        elif kind in RUN_ENDS:
            status = RUN_ENDS[kind]
            outcome.status = status
            if status != "success":
                outcome.error = outcome.error or f"Dagster run {run_id} {status}"
        else:
            return None
        if not outcome.done and (outcome.status, outcome.processed) == before:
            return None  # run.started after sync.started, say: nothing new to show
        return outcome


def follow(
    stream: EventStream,
    follower: SyncFollower,
    *,
    timeout: float,
    on_change: Callable[[EntityOutcome], None],
) -> bool:
    """Read events until every entity is finished; False when ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    while not follower.done:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        event = stream.next_event(min(left, 5.0))
        if event:
            changed = follower.apply(event)
            if changed is not None:
                on_change(changed)
    return True

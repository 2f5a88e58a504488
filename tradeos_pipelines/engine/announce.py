"""Publishing sync events: progress while reading, data events only after commit.

A broken event bus must not fail a sync whose data committed (the dashboard catches up from
``sync_logs``), so publishing errors are logged, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from tradeos_pipelines.event_bus import EventPublisher

log = logging.getLogger(__name__)

# product.updated / stock.updated / order.updated carry at most this many ids per event.
ID_BATCH = 500


def publish(publisher: EventPublisher, channel: str, event_type: str, data: dict[str, Any]) -> None:
    """Publish one event; a bus failure is logged (without the payload) and swallowed."""
    try:
        publisher.publish(channel, event_type, data)
    except Exception as exc:
        log.warning("could not publish %s on %s: %s", event_type, channel, exc)


def publish_ids(
    publisher: EventPublisher,
    channel: str,
    event_type: str,
    data: dict[str, Any],
    ids: Iterable[str],
    *,
    key: str,
) -> int:
    """Publish ``ids`` as ``data | {key: batch}``, :data:`ID_BATCH` a time; returns how many."""
    batch: list[str] = []
    total = 0
    for item in ids:
        batch.append(item)
        if len(batch) == ID_BATCH:
            publish(publisher, channel, event_type, {**data, key: batch})
            total += len(batch)
            batch = []
    if batch:
        publish(publisher, channel, event_type, {**data, key: batch})
        total += len(batch)
    return total

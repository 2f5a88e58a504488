"""What an entity sync reports, and the error it raises when it did not commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tradeos_pipelines.core.vocabulary import RowCounts


@dataclass(kw_only=True)
class SyncResult(RowCounts):
    """The outcome of one committed entity sync (a Dagster asset reports it as metadata),
    with its row counts."""

    sync_log_id: int
    integration_id: str
    entity: str
    status: str  # success | partial (some rows rejected or refused by 1C)
    duration_s: float
    sync_version: int | None
    onec_total: int | None
    full: bool


class SyncFailed(RuntimeError):
    """The sync did not commit; its ``sync_logs`` row (``sync_log_id``) says failed and why.

    ``transient`` is true when trying again later may succeed (1C unavailable past the retry
    budget, its circuit open, PostgreSQL gone); ``retry_at`` is when an open circuit lets a
    probe through. A 401, 404, a protocol error or too many rejected rows are not transient:
    repeating the run would fail the same way until someone fixes 1C or the integration.
    """

    def __init__(
        self,
        sync_log_id: int,
        reason: str,
        *,
        transient: bool = False,
        retry_at: datetime | None = None,
    ) -> None:
        super().__init__(f"sync {sync_log_id} failed: {reason}")
        self.sync_log_id = sync_log_id
        self.reason = reason
        self.transient = transient
        self.retry_at = retry_at


class ConflictNotFound(LookupError):
    """No ``sync_conflicts`` row has this id."""


class ConflictNotOpen(ValueError):
    """The conflict was already settled (by a person or by the policy)."""


class VersionNotFound(LookupError):
    """The product does not exist, or has no history at or before the asked sync version."""

"""Product history and restores as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.json_types import JSON_NUMBER, JsonBool


class FieldChange(BaseModel):
    field: str
    from_: Any = Field(alias="from")
    to: Any

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ProductChange(BaseModel):
    """One sync (or restore) that touched the product; ``created`` has no field changes."""

    sync_version: int
    change: str
    changed_at: datetime | None
    sync_log_id: int | None
    run_id: str | None
    changes: list[FieldChange]


class ProductHistoryPublic(BaseModel):
    integration_id: str
    onec_id: str
    is_active: bool
    values: dict[str, Any] = Field(description="The product's fields now")
    created_sync_version: int | None
    data: list[ProductChange] = Field(description="Oldest first")
    count: int


class RestoreRequest(BaseModel):
    """Restore every product of the integration to its values after ``to_version``."""

    model_config = ConfigDict(extra="forbid")

    # Sync versions come from a PostgreSQL BIGINT sequence; 2**53 - 1 is the largest integer
    # a JSON client (a browser) reads exactly, far beyond any real version, and a bound the
    # OpenAPI document states exactly (2**63 - 1 does not survive a float).
    to_version: Annotated[
        int,
        Field(ge=1, le=2**53 - 1, description="A sync version of this integration"),
        JSON_NUMBER,
    ]
    dry_run: JsonBool = Field(True, description="Only say what would change (the default)")


class RestoredProduct(BaseModel):
    onec_id: str
    code: str | None
    name: str | None
    changes: list[FieldChange]


class RestorePublic(BaseModel):
    """What the restore changes (dry run) or changed (applied)."""

    integration_id: str
    to_version: int
    applied: bool
    changed: int
    unchanged: int
    created_after: int = Field(description="Products created after to_version: left as they are")
    unknown: int = Field(description="Products older than their creation record: left as they are")
    products: list[RestoredProduct] = Field(description="At most 200, by code")
    truncated: bool
    sync_version: int | None = Field(description="The restore's own sync version (applied)")
    sync_log_id: int | None
    duration_s: float | None

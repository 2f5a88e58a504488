"""SQLAlchemy 2 models of the tables the sync owns.

The names in ``shared/contracts/data-model.md`` are what operators query by hand; keep them.
Money and quantities are ``Numeric`` (never floats); every timestamp carries its time zone.
Tables are created and changed only by the Alembic migrations in ``db/migrations``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tradeos_pipelines.core.vocabulary import ROW_COUNTERS

# Deterministic constraint names make migrations reversible and diffs readable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MONEY = Numeric(18, 2)
QUANTITY = Numeric(18, 3)

CONFLICT_POLICIES = ("onec_wins", "tradeos_wins", "manual")
AUTH_TYPES = ("api_key", "basic")
PROTOCOLS = ("http_service", "odata")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Every committed entity sync takes the next number: the ``sync_version`` stamped on the rows
# it wrote, its ``sync_logs`` row and the product history it kept.
sync_version_seq = Sequence("sync_version_seq", metadata=Base.metadata)


def _now_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Integration(Base):
    """One 1C infobase that TradeOS syncs with; ``id`` is a slug used as a Dagster partition key."""

    __tablename__ = "integrations"
    __table_args__ = (CheckConstraint("protocol IN ('http_service', 'odata')", name="protocol"),)

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    base_url: Mapped[str] = mapped_column(String(500), nullable=False)
    auth_type: Mapped[str] = mapped_column(String(16), nullable=False)
    # Fernet token of a JSON object: {"api_key": …} or {"username": …, "password": …}.
    credentials_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    timezone: Mapped[str] = mapped_column(
        String(64), nullable=False, server_default="Europe/Moscow"
    )
    conflict_policy: Mapped[str] = mapped_column(
        String(16), nullable=False, server_default="onec_wins"
    )
    cache_ttl_seconds: Mapped[int] = mapped_column(Integer, nullable=False, server_default="300")
    page_size: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1000")
    timeout_seconds: Mapped[float] = mapped_column(
        Numeric(8, 2), nullable=False, server_default="30"
    )
    # Per call to 1C: how long attempts are retried through 5xx/429/connection errors.
    retry_budget_seconds: Mapped[float] = mapped_column(
        Numeric(8, 2), nullable=False, server_default="120"
    )
    # Which 1C protocol: "http_service" (/hs/api) or "odata" (the standard OData interface).
    protocol: Mapped[str] = mapped_column(String(16), nullable=False, server_default="http_service")
    # The protocol's settings, e.g. OData's {"price_type_key": …, "price_register": "11.5"}.
    options: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()


class SyncState(Base):
    """Per integration and entity: the watermark an incremental sync resumes from."""

    __tablename__ = "sync_state"

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Largest 1C ``modified_at`` committed so far (1C local time converted to an aware value).
    watermark: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sync_version: Mapped[int | None] = mapped_column(BigInteger)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_full_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Row count that 1C reported as ``total`` in the last full pass (asset checks compare it).
    onec_total: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = _now_column()


class SyncLog(Base):
    """One row per entity sync (one Dagster materialization or one engine call)."""

    __tablename__ = "sync_logs"
    __table_args__ = (
        Index("ix_sync_logs_started_at", "started_at"),
        Index("ix_sync_logs_integration_started", "integration_id", "entity", "started_at"),
        Index("ix_sync_logs_status_started", "status", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False
    )
    entity: Mapped[str] = mapped_column(String(32), nullable=False)
    run_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="running")
    full: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    started_at: Mapped[datetime] = _now_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # One INTEGER column per row counter (fetched … rejected), named by the vocabulary.
    vars().update(
        {name: mapped_column(Integer, nullable=False, server_default="0") for name in ROW_COUNTERS}
    )
    error: Mapped[str | None] = mapped_column(Text)
    sync_version: Mapped[int | None] = mapped_column(BigInteger)


class IntegrationLog(Base):
    """Every HTTP attempt to 1C. Never credentials, never bodies."""

    __tablename__ = "integration_logs"
    __table_args__ = (Index("ix_integration_logs_integration_at", "integration_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # No foreign key: attempts are logged in batches and must not fail when an integration is
    # deleted mid-run; the sidecar deletes an integration's logs with it.
    integration_id: Mapped[str] = mapped_column(String(63), nullable=False)
    at: Mapped[datetime] = _now_column()
    method: Mapped[str] = mapped_column(String(8), nullable=False)
    path: Mapped[str] = mapped_column(String(500), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[float] = mapped_column(Numeric(12, 2), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    error: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(64))


class ProductGroup(Base):
    """Folders of the 1C nomenclature hierarchy (``is_folder`` items)."""

    __tablename__ = "product_groups"
    __table_args__ = (UniqueConstraint("integration_id", "onec_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False
    )
    onec_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    parent_onec_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    name: Mapped[str] = mapped_column(Text, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    onec_version: Mapped[str | None] = mapped_column(String(64))
    onec_modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sync_version: Mapped[int | None] = mapped_column(BigInteger)
    synced_at: Mapped[datetime] = _now_column()


class Product(Base):
    """A TradeOS catalogue item mirrored from 1C nomenclature."""

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("integration_id", "onec_id"),
        Index("ix_products_integration_code", "integration_id", "code"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False
    )
    onec_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    code: Mapped[str | None] = mapped_column(String(64))
    article: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(Text, nullable=False)
    full_name: Mapped[str | None] = mapped_column(Text)
    unit: Mapped[str | None] = mapped_column(String(32))
    group_onec_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    price: Mapped[Decimal | None] = mapped_column(MONEY)
    vat: Mapped[str | None] = mapped_column(String(16))
    barcodes: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")
    )
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    onec_version: Mapped[str | None] = mapped_column(String(64))
    onec_modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The field values as 1C last sent them: the common base of a three-way conflict check
    # (a field differs from it in TradeOS and in 1C → conflict).
    onec_values: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    sync_version: Mapped[int | None] = mapped_column(BigInteger)
    # The sync that created the product (its values then are in onec_values or in the
    # ``previous`` of its first product_history row); NULL for rows older than migration 0003
    # that have no ``created`` history row.
    created_sync_version: Mapped[int | None] = mapped_column(BigInteger)
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when TradeOS itself edits the product; NULL when it equals what 1C sent.
    local_modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now_column()


class ProductHistory(Base):
    """The values a product had before a sync changed it, so a person can see and restore them."""

    __tablename__ = "product_history"
    __table_args__ = (
        Index("ix_product_history_product_version", "product_id", "sync_version"),
        Index("ix_product_history_integration_version", "integration_id", "sync_version"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), nullable=False
    )
    integration_id: Mapped[str] = mapped_column(String(63), nullable=False)
    sync_version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    change: Mapped[str] = mapped_column(String(16), nullable=False)
    # Previous values (NULL for a product the sync created).
    previous: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    current: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    changed_at: Mapped[datetime] = _now_column()


class Warehouse(Base):
    __tablename__ = "warehouses"
    __table_args__ = (UniqueConstraint("integration_id", "onec_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False
    )
    onec_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)


class Stock(Base):
    """Current free balance of a product in a warehouse."""

    __tablename__ = "stock"
    __table_args__ = (Index("ix_stock_integration_product", "integration_id", "product_id"),)

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False
    )
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    warehouse_id: Mapped[int] = mapped_column(
        ForeignKey("warehouses.id", ondelete="CASCADE"), primary_key=True
    )
    quantity: Mapped[Decimal] = mapped_column(QUANTITY, nullable=False, server_default="0")
    reserved: Mapped[Decimal] = mapped_column(QUANTITY, nullable=False, server_default="0")
    available: Mapped[Decimal] = mapped_column(QUANTITY, nullable=False, server_default="0")
    onec_modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sync_version: Mapped[int | None] = mapped_column(BigInteger)
    synced_at: Mapped[datetime] = _now_column()


class Order(Base):
    """A TradeOS order; exported to 1C with ``id`` as ``external_id`` (the idempotency key)."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_integration_status", "integration_id", "status"),
        Index("ix_orders_integration_date", "integration_id", "order_date"),
        Index("ix_orders_onec_id", "integration_id", "onec_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False
    )
    # new → exported (1C accepted it) | export_failed (1C refused: a person must look).
    status: Mapped[str] = mapped_column(String(32), nullable=False, server_default="new")
    order_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    customer_name: Mapped[str] = mapped_column(Text, nullable=False)
    customer_inn: Mapped[str | None] = mapped_column(String(12))
    customer_phone: Mapped[str | None] = mapped_column(String(32))
    customer_email: Mapped[str | None] = mapped_column(String(254))
    warehouse_onec_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    comment: Mapped[str | None] = mapped_column(Text)
    total: Mapped[Decimal | None] = mapped_column(MONEY)
    onec_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    onec_number: Mapped[str | None] = mapped_column(String(64))
    onec_status: Mapped[str | None] = mapped_column(String(128))
    onec_modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    exported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    export_error: Mapped[str | None] = mapped_column(Text)
    export_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
    )
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), nullable=False)
    quantity: Mapped[Decimal] = mapped_column(QUANTITY, nullable=False)
    price: Mapped[Decimal] = mapped_column(MONEY, nullable=False)


class SyncConflict(Base):
    """A field changed both in TradeOS and in 1C, kept for a person under ``manual`` policy."""

    __tablename__ = "sync_conflicts"
    __table_args__ = (
        Index("ix_sync_conflicts_integration_status", "integration_id", "status"),
        # At most one open conflict per field: a later sync updates it instead of piling up.
        Index(
            "uq_sync_conflicts_open_field",
            "integration_id",
            "entity",
            "onec_id",
            "field",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False
    )
    entity: Mapped[str] = mapped_column(String(32), nullable=False)
    onec_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    field: Mapped[str] = mapped_column(String(64), nullable=False)
    tradeos_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    onec_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    # open | resolved (with ``resolution`` = onec | tradeos) | auto (settled by the policy).
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    resolution: Mapped[str | None] = mapped_column(String(16))
    sync_log_id: Mapped[int | None] = mapped_column(ForeignKey("sync_logs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now_column()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SyncReject(Base):
    """A row 1C sent that could not be taken, with the reason and what 1C sent."""

    __tablename__ = "sync_rejects"
    __table_args__ = (
        Index("ix_sync_rejects_open", "onec_id", postgresql_where=text("resolved_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    sync_log_id: Mapped[int] = mapped_column(
        ForeignKey("sync_logs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    onec_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[Any] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = _now_column()
    # Set when a later sync committed a good version of the row (or a full pass no longer
    # rejected it); open rejects are the ones someone has to fix in 1C.
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by_sync_log_id: Mapped[int | None] = mapped_column(BigInteger)


class SyncRequest(Base):
    """A sync asked for outside the schedules (1C webhook, "sync now").

    Written by the sidecar, turned into Dagster runs by a short-interval sensor, so a request
    that arrives while the Dagster daemon is down waits here instead of being lost.
    """

    __tablename__ = "sync_requests"
    __table_args__ = (Index("ix_sync_requests_pending", "picked_at", "requested_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False
    )
    entities: Mapped[list[str]] = mapped_column(ARRAY(String(32)), nullable=False)
    full: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # webhook | manual
    requested_at: Mapped[datetime] = _now_column()
    picked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    run_ids: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))


class ApiToken(Base):
    """A sidecar bearer token, stored as the SHA-256 of a long random secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = _now_column()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Space-separated: admin | read | webhook:<integration id> (api.core.scopes).
    scopes: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'admin'"))

"""Typed rows of the 1C HTTP service (``shared/contracts/onec-http-service.md``).

The field names and types here are the seam between the 1C client and the sync engine:
ids are ``UUID`` (``None`` for 1C's zero GUID), money and quantities ``Decimal``, timestamps
aware datetimes in the integration's time zone (``None`` for 1C's empty date). The 1C quirks
(BOM, ``"1 234,50"``, empty dates, zero GUIDs) are turned into these types by the client's
parsers, in one place; nothing downstream sees a raw 1C value.

The rows of bulk reads (:class:`NomenclatureItem`, :class:`StockRow`, :class:`OneCOrder`) and
:class:`Page` are frozen ``msgspec.Struct`` types: a clean page is decoded into them in one C
call. They are read by attribute; constructing one does not validate (the parsers have
checked every value). Request bodies and one-off answers stay pydantic models.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar
from uuid import UUID

import msgspec
from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class OneCRow(BaseModel):
    """Base of one-off 1C answers (health, created order): validated when constructed."""

    model_config = ConfigDict(frozen=True, extra="ignore")


# gc=False: rows hold only ids, numbers, dates, text and tuples of text, never a cycle, so the
# cyclic collector need not track (and rescan) hundreds of thousands of them during a sync.
class _Row(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    pass


class NomenclatureItem(_Row, kw_only=True):
    """A catalogue item (or a folder of the hierarchy when ``is_folder``)."""

    id: UUID
    code: str | None = None
    article: str | None = None
    name: str | None = None  # required for non-folders (the parser enforces it)
    full_name: str | None = None
    unit: str | None = None
    group_id: UUID | None = None
    is_folder: bool = False
    barcodes: tuple[str, ...] = ()
    price: Decimal | None = None
    vat: str | None = None
    deleted: bool = False
    version: str | None = None
    modified_at: datetime | None = None


class StockRow(_Row, kw_only=True):
    """Free balance of a product in a warehouse."""

    product_id: UUID
    warehouse_id: UUID
    warehouse_name: str | None = None
    quantity: Decimal
    reserved: Decimal = Decimal(0)
    available: Decimal
    modified_at: datetime | None = None


class OneCOrder(_Row, kw_only=True):
    """A customer order (ЗаказКлиента) as 1C lists it, with its current 1C status."""

    id: UUID
    number: str
    external_id: UUID | None = None
    status: str
    date: datetime | None = None
    total: Decimal | None = None
    modified_at: datetime | None = None


class OrderCustomer(BaseModel):
    name: str
    inn: str | None = None
    phone: str | None = None
    email: str | None = None


class OrderLine(BaseModel):
    product_id: UUID
    quantity: Decimal
    price: Decimal


class OrderCreate(BaseModel):
    """What TradeOS sends to ``POST /hs/api/orders``; ``external_id`` is the idempotency key."""

    external_id: UUID
    date: datetime
    customer: OrderCustomer
    warehouse_id: UUID | None = None
    comment: str | None = None
    items: list[OrderLine] = Field(min_length=1)


class OrderCreated(OneCRow):
    """1C's answer to an order creation; ``duplicate`` when an earlier attempt created it."""

    id: UUID
    number: str
    status: str
    external_id: UUID
    duplicate: bool = False


class OneCHealth(OneCRow):
    status: str
    configuration: str | None = None
    version: str | None = None


class RejectedRow(msgspec.Struct, frozen=True, kw_only=True):
    """A row of a page that could not be parsed; the sync engine stores it in ``sync_rejects``."""

    payload: Any
    reason: str  # names the field and what was wrong, e.g. "price: 'abc' is not a number"
    onec_id: str | None = None


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a list endpoint: the rows that parsed, the ones that did not, and paging."""

    items: list[T]
    rejected: list[RejectedRow] = []
    next_cursor: str | None = None
    total: int | None = None

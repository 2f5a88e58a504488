"""The quirk parsers: numbers, dates, GUIDs, envelopes and row rejection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeos_pipelines.emulators.http_service.quirks import format_number
from tradeos_pipelines.sources.common.errors import OneCProtocolError
from tradeos_pipelines.sources.common.values import (
    parse_decimal,
    parse_guid,
    parse_local_datetime,
    to_onec_local,
)
from tradeos_pipelines.sources.http_service.entities import NomenclatureParser, StockParser
from tradeos_pipelines.sources.http_service.parsing import decode_envelope

MSK = ZoneInfo("Europe/Moscow")
money = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2, allow_nan=False
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1234.5, Decimal("1234.5")),
        (12, Decimal(12)),
        ("1234.50", Decimal("1234.50")),
        ("1 234,50", Decimal("1234.50")),
        ("1\u00a0234,50", Decimal("1234.50")),
        ("1\u202f234\u202f567,5", Decimal("1234567.5")),
        ("-12,5", Decimal("-12.5")),
        ("0,000", Decimal("0.000")),
        (" 7 ", Decimal(7)),
        ("", None),
        (None, None),
    ],
)
def test_numbers_as_1c_sends_them(raw, expected):
    assert parse_decimal(raw) == expected


@pytest.mark.parametrize("raw", ["abc", "1,234.50", "12 34", "1e5", "NaN", True, [], "1,2,3"])
def test_what_is_not_a_number_is_refused_with_the_value(raw):
    with pytest.raises(ValueError, match="not a number"):
        parse_decimal(raw)


@given(money, st.integers(min_value=0, max_value=3))
def test_any_formatted_amount_parses_back_to_itself(amount, variant):
    formatted = format_number(float(amount), 2, variant)
    assert parse_decimal(formatted) == amount


@given(st.decimals(min_value=-(10**15), max_value=10**15, places=3, allow_nan=False))
def test_plain_decimal_strings_round_trip(value):
    assert parse_decimal(str(value)) == value


def test_guids():
    assert parse_guid("00000000-0000-0000-0000-000000000000") is None
    assert parse_guid(None) is None and parse_guid("") is None
    value = "9f1c2a8e-3b7d-11ef-8a6c-00155d012345"
    assert parse_guid(value) == UUID(value)
    with pytest.raises(ValueError, match="not a GUID"):
        parse_guid("not-a-guid")


def test_dates_become_aware_in_the_integration_zone():
    parsed = parse_local_datetime("2026-11-20T10:15:36", MSK)
    assert parsed == datetime(2026, 11, 20, 7, 15, 36, tzinfo=UTC)
    assert parsed.tzinfo == MSK
    assert parse_local_datetime("0001-01-01T00:00:00", MSK) is None
    assert parse_local_datetime("2026-11-20T10:15:36.250", MSK).microsecond == 250_000
    with pytest.raises(ValueError, match="not a date"):
        parse_local_datetime("20.11.2026", MSK)


def test_changed_since_goes_to_1c_as_local_time():
    moment = datetime(2026, 11, 20, 7, 15, 36, tzinfo=UTC)
    assert to_onec_local(moment, MSK) == "2026-11-20T10:15:36"
    assert to_onec_local(moment + timedelta(microseconds=1_999), MSK) == "2026-11-20T10:15:36.001"
    with pytest.raises(ValueError, match="timezone-aware"):
        to_onec_local(datetime(2026, 1, 1), MSK)


ZONES = st.sampled_from(["Europe/Moscow", "Asia/Yekaterinburg", "Europe/Kaliningrad"])
AWARE = st.sampled_from([UTC, MSK, ZoneInfo("Asia/Vladivostok")])


@given(
    st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2100, 1, 1), timezones=AWARE),
    ZONES,
)
def test_local_time_round_trip_loses_at_most_a_millisecond(moment, zone):
    # Russia has kept no daylight saving time since 2014, so local times are unambiguous.
    tz = ZoneInfo(zone)
    back = parse_local_datetime(to_onec_local(moment, tz), tz)
    assert timedelta(0) <= moment - back < timedelta(milliseconds=1)


@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2015, 1, 1), timezones=AWARE),
    ZONES,
)
def test_ambiguous_local_times_of_old_dst_only_ever_move_earlier(moment, zone):
    # A zone-less 1C time in a repeated autumn hour is read as the earlier one: a
    # changed_since read then re-reads an hour more, and never skips a row.
    tz = ZoneInfo(zone)
    back = parse_local_datetime(to_onec_local(moment, tz), tz)
    assert timedelta(0) <= moment - back <= timedelta(hours=1, milliseconds=1)


def _item(**changes):
    row = {
        "id": "9f1c2a8e-3b7d-11ef-8a6c-00155d012345",
        "code": "00-00001234",
        "article": "ART-1234",
        "name": "Перчатки рабочие нейлоновые",
        "full_name": "Перчатки рабочие «Профи»",
        "unit": "шт",
        "group_id": "8f1c2a8e-3b7d-11ef-8a6c-00155d012345",
        "is_folder": False,
        "barcodes": ["4601234567890"],
        "price": 1234.5,
        "vat": "20%",
        "deleted": False,
        "version": "AAAAAgAAAAA=",
        "modified_at": "2026-11-20T10:15:36",
    }
    row.update(changes)
    return row


@given(
    price=st.one_of(
        st.none(), money.map(float), money.map(lambda d: format_number(float(d), 2, 2))
    ),
    group=st.sampled_from([None, "00000000-0000-0000-0000-000000000000", _item()["group_id"]]),
    is_folder=st.booleans(),
    code=st.one_of(st.text(max_size=5), st.integers(0, 99999)),
)
def test_quick_and_careful_paths_agree(price, group, is_folder, code):
    raw = _item(price=price, group_id=group, is_folder=is_folder, code=code)
    careful = NomenclatureParser(MSK).careful(raw)
    body = orjson.dumps({"items": [raw], "next_cursor": None})
    page = NomenclatureParser(MSK).parse_body(body, "GET /nomenclature")
    assert page.items == [careful] and not page.rejected


def test_a_broken_row_sends_the_page_to_the_careful_path_with_the_raw_payload():
    rows = [_item(), _item(id="00000000-0000-0000-0000-000000000000"), _item(price="1 234,50")]
    body = b"\xef\xbb\xbf" + orjson.dumps({"items": rows, "next_cursor": "c2", "total": 3})
    page = NomenclatureParser(MSK).parse_body(body, "GET /nomenclature")
    assert [i.price for i in page.items] == [Decimal("1234.5"), Decimal("1234.50")]
    assert [r.reason for r in page.rejected] == ["id: is the zero GUID (no reference)"]
    assert page.rejected[0].payload == rows[1]
    assert page.next_cursor == "c2" and page.total == 3


def test_bad_rows_are_rejected_with_the_field_named_and_the_page_goes_on():
    rows = [
        _item(),
        _item(id=None),
        _item(name=""),
        _item(price="abc"),
        _item(id="not-a-guid"),
        _item(barcodes="4601234567890"),
        "just a string",
        _item(name="", is_folder=True, unit=None, price=None),
    ]
    page = NomenclatureParser(MSK).parse_page({"items": rows, "next_cursor": None, "total": 8})
    assert len(page.items) == 2
    reasons = [r.reason for r in page.rejected]
    assert reasons == [
        "id: missing",
        "name: missing (required for an item that is not a folder)",
        "price: 'abc' is not a number",
        "id: 'not-a-guid' is not a GUID",
        "barcodes: expected a list, got '4601234567890'",
        "row: expected a JSON object, got str",
    ]
    assert page.rejected[2].onec_id == rows[3]["id"]
    assert page.rejected[2].payload == rows[3]


def test_stock_without_available_is_quantity_minus_reserved():
    raw = {
        "product_id": _item()["id"],
        "warehouse_id": _item()["group_id"],
        "quantity": "12,000",
        "reserved": 2,
    }
    row = StockParser(MSK).parse_page({"items": [raw], "next_cursor": None, "total": None}).items[0]
    assert row.available == Decimal("10.000")
    assert row.modified_at is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<html><head><title>502 Bad Gateway</title></head></html>", "HTML page: 502 Bad Gateway"),
        (b'{"items": [{"id": "x"}', "not valid JSON"),
        (b"", "an empty body"),
        (b'{"data": []}', "without an 'items' list"),
        (b"[]", "without an 'items' list"),
        (b'{"items": [], "next_cursor": 5}', "next_cursor 5"),
    ],
)
def test_envelope_problems_are_protocol_errors(body, fragment):
    with pytest.raises(OneCProtocolError, match=fragment.replace("(", r"\(")):
        decode_envelope(body, "GET /nomenclature")


def test_bom_is_accepted():
    assert decode_envelope(b'\xef\xbb\xbf{"items": []}', "x") == {
        "items": [],
        "next_cursor": None,
        "total": None,
    }


def _stock(**changes):
    row = {
        "product_id": _item()["id"],
        "warehouse_id": _item()["group_id"],
        "warehouse_name": "Основной склад",
        "quantity": 12,
        "reserved": 2,
        "available": 10,
        "modified_at": "2026-11-20T10:15:36",
    }
    row.update(changes)
    return row


@given(
    amounts=st.lists(
        st.tuples(money, st.integers(min_value=0, max_value=3)), min_size=3, max_size=3
    ),
    empty_date=st.booleans(),
)
def test_quick_and_careful_paths_agree_on_stock(amounts, empty_date):
    numbers = [format_number(float(value), 3, variant) for value, variant in amounts]
    raw = _stock(
        quantity=numbers[0],
        reserved=numbers[1],
        available=numbers[2],
        modified_at="0001-01-01T00:00:00" if empty_date else "2026-11-20T10:15:36",
    )
    careful = StockParser(MSK).careful(raw)
    body = orjson.dumps({"items": [raw, raw], "next_cursor": None})
    parser = StockParser(MSK)
    decoded = parser.decode(body, "GET /stock")
    assert decoded.typed  # Формат() numbers are rewritten, not sent to the careful path
    page = parser.build(decoded)
    assert page.items == [careful, careful] and not page.rejected


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (_item(price="NaN"), "price: 'NaN' is not a number"),
        (_item(price="Infinity"), "price: 'Infinity' is not a number"),
        (_item(name="   "), "name: missing (required for an item that is not a folder)"),
        (_item(name=None), "name: missing (required for an item that is not a folder)"),
    ],
)
def test_rows_the_typed_decode_takes_but_the_contract_refuses_are_rejected(row, reason):
    body = orjson.dumps({"items": [_item(), row], "next_cursor": None})
    page = NomenclatureParser(MSK).parse_body(body, "GET /nomenclature")
    assert len(page.items) == 1
    assert [r.reason for r in page.rejected] == [reason]


def test_clean_page_settles_zero_guids_empty_dates_and_the_zone():
    rows = [
        _item(group_id="00000000-0000-0000-0000-000000000000", barcodes=[]),
        _item(modified_at="0001-01-01T00:00:00", is_folder=True, name=None),
        _item(modified_at="2026-03-29T02:30:00+00:00"),
    ]
    parser = NomenclatureParser(MSK)
    decoded = parser.decode(orjson.dumps({"items": rows}), "GET /nomenclature")
    assert decoded.typed
    page = parser.build(decoded)
    assert not page.rejected
    assert page.items[0].group_id is None and page.items[0].barcodes == ()
    assert page.items[0].modified_at == datetime(2026, 11, 20, 10, 15, 36, tzinfo=MSK)
    assert page.items[0].modified_at.tzinfo is MSK
    assert page.items[1].modified_at is None
    assert page.items[2].modified_at == datetime(2026, 3, 29, 2, 30, tzinfo=UTC)
    assert page.items[2].modified_at.tzinfo is MSK


def test_stock_zero_warehouse_is_rejected_on_a_typed_page():
    rows = [_stock(), _stock(warehouse_id="00000000-0000-0000-0000-000000000000")]
    page = StockParser(MSK).parse_body(orjson.dumps({"items": rows}), "GET /stock")
    assert len(page.items) == 1
    assert [r.reason for r in page.rejected] == ["warehouse_id: is the zero GUID (no reference)"]

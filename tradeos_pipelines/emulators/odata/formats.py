"""How answers are written: OData JSON, a minimal Atom, 1C's errors, a web server's pages.

JSON is what integrations ask for (``$format=json``). Without it 1C answers Atom XML; the
emulator writes a minimal but well-formed Atom feed or entry (``m:properties`` with typed
``d:`` elements), enough for a client to see it got XML and not JSON. Errors are always 1C's
JSON error object, whatever format was asked for.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

import orjson

from tradeos_pipelines.emulators.odata.schema import EntityType

JSON = b"application/json;charset=utf-8"
ATOM_FEED = b"application/atom+xml;type=feed;charset=utf-8"
ATOM_ENTRY = b"application/atom+xml;type=entry;charset=utf-8"
XML = b"application/xml;charset=utf-8"
TEXT = b"text/plain;charset=utf-8"
HTML = b"text/html; charset=utf-8"

DATA_NS = "http://schemas.microsoft.com/ado/2007/08/dataservices"
METADATA_NS = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
ATOM_NS = "http://www.w3.org/2005/Atom"


def error_body(code: str, message: str) -> bytes:
    """``{"odata.error": {"code": …, "message": {"lang": "ru", "value": …}}}``."""
    return orjson.dumps(
        {"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}}
    )


def json_collection(rows: list[bytes], metadata: str | None, count: int | None) -> bytes:
    """A collection: ``odata.metadata``, ``odata.count`` (a string, as 1C sends it), ``value``."""
    head = b"{"
    if metadata is not None:
        head += b'"odata.metadata":' + orjson.dumps(metadata) + b","
    if count is not None:
        head += b'"odata.count":"' + str(count).encode() + b'",'
    return head + b'"value":[' + b",".join(rows) + b"]}"


def json_entity(row: bytes, metadata: str | None) -> bytes:
    """A single entity: the object itself, no ``value`` wrapper."""
    if metadata is None:
        return row
    separator = b"," if row != b"{}" else b""
    return b'{"odata.metadata":' + orjson.dumps(metadata) + separator + row[1:]


def _xml_value(name: str, value: Any, entity: EntityType | None) -> str:
    prop = entity.by_name.get(name) if entity is not None else None
    type_attr = f' m:type="{prop.edm}"' if prop is not None and prop.edm != "Edm.String" else ""
    if isinstance(value, list):
        type_name = prop.type_name if prop is not None else "Collection"
        elements = "".join(
            "<d:element>"
            + "".join(_xml_value(k, v, None) for k, v in item.items())
            + "</d:element>"
            for item in value
        )
        return f"<d:{name} m:type={quoteattr(type_name)}>{elements}</d:{name}>"
    text = ("true" if value else "false") if isinstance(value, bool) else escape(str(value))
    return f"<d:{name}{type_attr}>{text}</d:{name}>" if text else f"<d:{name}{type_attr}/>"


def _entry(root: str, entity_set: str, row: dict[str, Any], entity: EntityType) -> str:
    key = row.get("Ref_Key")
    location = f"{entity_set}(guid'{key}')" if key else entity_set
    properties = "".join(_xml_value(k, v, entity) for k, v in row.items())
    return (
        f"<entry><id>{escape(root + '/' + location)}</id>"
        f'<category term="StandardODATA.{escape(entity.name)}" '
        'scheme="http://schemas.microsoft.com/ado/2007/08/dataservices/scheme"/>'
        '<title type="text"/><author/><summary/>'
        f'<content type="application/xml"><m:properties>{properties}</m:properties></content>'
        "</entry>"
    )


def atom_feed(
    root: str, entity_set: str, rows: list[dict[str, Any]], entity: EntityType, count: int | None
) -> bytes:
    """A collection as a minimal Atom feed."""
    entries = "".join(_entry(root, entity_set, row, entity) for row in rows)
    counted = f"<m:count>{count}</m:count>" if count is not None else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<feed xmlns="{ATOM_NS}" xmlns:d="{DATA_NS}" xmlns:m="{METADATA_NS}" '
        f"xml:base={quoteattr(root + '/')}>"
        f'<id>{escape(root + "/" + entity_set)}</id><title type="text">{escape(entity_set)}'
        f"</title>{entries}{counted}</feed>"
    ).encode()


def atom_entry(root: str, entity_set: str, row: dict[str, Any], entity: EntityType) -> bytes:
    """A single entity as a minimal Atom entry."""
    entry = _entry(root, entity_set, row, entity)
    namespaces = f'<entry xmlns="{ATOM_NS}" xmlns:d="{DATA_NS}" xmlns:m="{METADATA_NS}">'
    return ('<?xml version="1.0" encoding="UTF-8"?>' + namespaces + entry[7:]).encode()


def service_document(root: str, entity_sets: list[str], as_json: bool) -> bytes:
    """The service root: the list of published entity sets."""
    if as_json:
        value = [{"name": name, "url": name} for name in entity_sets]
        return orjson.dumps({"odata.metadata": f"{root}/$metadata", "value": value})
    collections = "".join(
        f'<collection href={quoteattr(name)}><atom:title type="text">{escape(name)}'
        "</atom:title></collection>"
        for name in entity_sets
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<service xmlns="http://www.w3.org/2007/app" xmlns:atom="http://www.w3.org/2005/Atom" '
        f'xml:base={quoteattr(root + "/")}><workspace><atom:title type="text">Default'
        f"</atom:title>{collections}</workspace></service>"
    ).encode()


# ----- the web server in front of 1C ----------------------------------------------------------
SERVER_HEADERS = {"apache": b"Apache/2.4.58 (Win64)", "iis": b"Microsoft-IIS/10.0"}
REASONS = {
    401: ("Unauthorized", "Access is denied due to invalid credentials."),
    403: ("Forbidden", "You don't have permission to access this resource."),
    404: ("Not Found", "The requested URL was not found on this server."),
    414: ("Request-URI Too Long", "The requested URL's length exceeds the capacity limit."),
    500: ("Internal Server Error", "The server encountered an internal error."),
    502: ("Bad Gateway", "The proxy server received an invalid response from an upstream server."),
    503: ("Service Unavailable", "The server is temporarily unable to service your request."),
    504: ("Gateway Timeout", "The gateway did not receive a timely response from the upstream."),
}


def web_server_page(server: str, status: int, detail: str | None = None) -> bytes:
    """The HTML page Apache or IIS answers with (on 401, 5xx, a too long URL, …)."""
    reason, text = REASONS.get(status, ("Error", "The request could not be served."))
    text = detail or text
    if server == "iis":
        return (
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
            '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\r\n'
            '<html xmlns="http://www.w3.org/1999/xhtml"><head>'
            f"<title>{status} - {escape(reason)}</title></head><body>"
            '<div id="header"><h1>Server Error</h1></div><div id="content">'
            f'<div class="content-container"><fieldset><h2>{status} - {escape(reason)}</h2>'
            f"<h3>{escape(text)}</h3></fieldset></div></div></body></html>"
        ).encode()
    return (
        '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
        f"<title>{status} {escape(reason)}</title>\n</head><body>\n<h1>{escape(reason)}</h1>\n"
        f"<p>{escape(text)}</p>\n<hr>\n<address>Apache/2.4.58 (Win64)</address>\n"
        "</body></html>\n"
    ).encode()

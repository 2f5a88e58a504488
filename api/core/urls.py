"""The one definition of a valid 1C publication URL, shared by validation and the document.

The sidecar checks ``base_url`` against :data:`BASE_URL_PATTERN` and the OpenAPI document
states the same pattern, so every URL the document allows is one the sidecar takes (and the
reverse): http(s), a host name, IPv4 or IPv6 address, an optional port and path; no
credentials, query or fragment.
"""

from __future__ import annotations

_H16 = "[0-9A-Fa-f]{1,4}"
# RFC 4291 text forms without an embedded IPv4 part or a zone id.
_IPV6 = "|".join(
    [
        f"({_H16}:){{7}}{_H16}",
        f"({_H16}:){{1,7}}:",
        f"({_H16}:){{1,6}}:{_H16}",
        f"({_H16}:){{1,5}}(:{_H16}){{1,2}}",
        f"({_H16}:){{1,4}}(:{_H16}){{1,3}}",
        f"({_H16}:){{1,3}}(:{_H16}){{1,4}}",
        f"({_H16}:){{1,2}}(:{_H16}){{1,5}}",
        f"{_H16}:(:{_H16}){{1,6}}",
        f":((:{_H16}){{1,7}}|:)",
    ]
)
# The scheme is case-insensitive (RFC 3986); JSON Schema patterns have no flags.
BASE_URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9.-]+|\[({_IPV6})\])(:[0-9]{{1,5}})?(/[A-Za-z0-9._~%/-]*)?$"

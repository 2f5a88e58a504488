"""Rules for 1C credentials: they travel in HTTP headers, so they must be header-safe.

``X-API-Key`` is sent as-is: printable ASCII only. HTTP Basic sends base64 of UTF-8
``username:password`` (1C user names are often Cyrillic, so non-ASCII is fine there) but no
control characters, and the first ``:`` ends the user name.
"""

from __future__ import annotations

import unicodedata


def credential_problem(field: str, value: str) -> str | None:
    """Why ``value`` cannot be the credential ``field`` (api_key, username, password), or None."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    # Control characters (Unicode Cc: newline, tab, DEL, C1) are what no 1C user name,
    # password or header value holds; other characters travel fine in Basic's base64.
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return "must not contain control characters (newline, tab, ...)"
    if field == "api_key" and not value.isascii():
        return "must be printable ASCII (it is sent in the X-API-Key header)"
    if field == "username" and ":" in value:
        return "must not contain ':' (HTTP Basic auth separates user and password with it)"
    return None


def stored_credential_problems(
    api_key: str | None, username: str | None, password: str | None
) -> list[tuple[str, str]]:
    """(field, reason) for each stored credential that cannot be sent to 1C."""
    problems = []
    for field, value in (("api_key", api_key), ("username", username), ("password", password)):
        if value:
            reason = credential_problem(field, value)
            if reason is not None:
                problems.append((field, reason))
    return problems

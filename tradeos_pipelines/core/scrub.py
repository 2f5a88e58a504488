"""One scrubber for every text that leaves the process or is stored: secrets become ``***``.

A 1C (or a proxy in front of it) may echo what it was sent — ``401 Wrong password for
user:secret`` — and that text flows into ``integration_logs``, ``sync_logs.error``, the
``sync.failed`` event, API answers and Dagster's event log. :class:`Scrubber` removes an
integration's secrets from such text in every form they can take there:

- raw, URL-encoded (``%20`` and ``+`` forms), JSON-escaped (``\\"``, ``\\uXXXX``), HTML-escaped;
- base64 of ``user:password`` (a Basic ``Authorization`` header echoed back) and of the
  secret alone.

A secret shorter than :data:`MIN_SECRET_CHARS` is not masked: replacing every ``x`` of a
message because the password is ``x`` would destroy the message and, by showing where the
masks fall, reveal the secret anyway. Such secrets are refused on input where possible.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_CHARS = 4


def secret_forms(secret: str) -> set[str]:
    """Every encoding of ``secret`` that :class:`Scrubber` removes."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
    }
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(secret.encode()).decode()
        # Padded (a whole header value) and unpadded (cut or re-encoded) forms.
        forms |= {encoded, encoded.rstrip("=")}
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


class Scrubber:
    """Replaces the given secrets (and ``user:password`` pairs) in text with ``***``."""

    def __init__(
        self, secrets: Iterable[str | None] = (), *, basic: tuple[str, str] | None = None
    ) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_CHARS:
                forms |= secret_forms(secret)
        if basic is not None and basic[1] and len(basic[1]) >= MIN_SECRET_CHARS:
            pair = f"{basic[0]}:{basic[1]}"
            forms |= secret_forms(pair) | secret_forms(basic[1])
        # Longest first: a form that contains another (user:pass contains pass) wins.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        """``text`` with every secret form replaced by ``***``."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def scrub_value(self, value: Any) -> Any:
        """Strings in ``value`` (nested dicts, lists and tuples too) scrubbed."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub_value(v) for v in value)
        return value

    def scrub_exception(self, exc: BaseException) -> BaseException:
        """Rewrite, in place, the messages of ``exc`` and of its causes and contexts.

        An exception is kept by Dagster (and logged with its chain); its text must be clean
        wherever it ends up, not only where this process formats it.
        """
        seen: set[int] = set()
        current: BaseException | None = exc
        pending = [exc]
        while pending:
            current = pending.pop()
            if current is None or id(current) in seen:
                continue
            seen.add(id(current))
            current.args = tuple(self.scrub_value(a) for a in current.args)
            for name in ("message", "last_cause"):
                value = getattr(current, name, None)
                if isinstance(value, str):
                    with contextlib.suppress(AttributeError):  # a read-only attribute
                        setattr(current, name, self(value))
            pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        return exc


def scrubber_for(config: Any) -> Scrubber:
    """The scrubber of an :class:`~tradeos_pipelines.core.integration.IntegrationConfig`."""
    username = getattr(config, "username", None)
    password = getattr(config, "password", None)
    return Scrubber(
        (getattr(config, "api_key", None), password, getattr(config, "webhook_secret", None)),
        basic=(username or "", password) if password else None,
    )

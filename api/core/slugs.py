"""Integration ids: slugs usable as Dagster partition keys (``[a-z0-9-]``, at most 63 long)."""

from __future__ import annotations

import re
import unicodedata

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
MAX_LENGTH = 63

# GOST 7.79-2000 system B style, as Russian URLs usually do it.
_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh",
    "з": "z", "и": "i", "й": "j", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "c",
    "ч": "ch", "ш": "sh", "щ": "shh", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
    "я": "ya", "і": "i", "ї": "yi", "є": "ye", "ґ": "g",
}  # fmt: skip


def slugify(text: str) -> str:
    """``"Основная база 1С"`` → ``"osnovnaya-baza-1s"``; empty when nothing is left."""
    lowered = "".join(_CYRILLIC.get(ch, ch) for ch in text.lower())
    ascii_text = unicodedata.normalize("NFKD", lowered).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return slug[:MAX_LENGTH].rstrip("-")


def is_slug(value: str) -> bool:
    """Whether ``value`` is a valid integration id."""
    return re.fullmatch(SLUG_PATTERN, value) is not None

"""Checks of text people type or operators configure, before it reaches Stripe or the cache database.

Each `*_problem` function returns why the value is refused, as the end of a sentence that the caller begins
with the field's name ("The return URL 'x' …", "PORTAL_RETURN_URL='x' …"), or None when it is fine.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # NUL, tab, CR, LF and the other C0 controls, and DEL
CONTROL_NAMES = {"\x00": "NUL", "\t": "tab", "\n": "line feed", "\r": "carriage return"}


def control_name(text: str) -> str | None:
    """The name of the first control character in `text` (NUL, tab, line feed, …), or None when there is none."""
    found = CONTROL.search(text)
    if found is None:
        return None
    char = found.group()
    return CONTROL_NAMES.get(char, f"U+{ord(char):04X}")


def http_url_problem(url: str) -> str | None:
    """Why `url` is not an absolute http(s) URL with a host and no spaces or control characters; else None."""
    example = "e.g. https://example.com/account"
    control = control_name(url)
    if control:
        return f"contains a control character ({control}); type the address again without it ({example})."
    if " " in url:
        return f"contains a space; a web address has none (encode it as %20), {example}."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError for a port that is not a number in range
    except ValueError:
        return f"is not a valid web address; use an absolute http:// or https:// URL, {example}."
    if parts.scheme.lower() not in ("http", "https"):
        return f"must start with http:// or https://, {example}."
    if not parts.hostname:
        return f"has no host name after {parts.scheme}://; use an absolute URL, {example}."
    return None


def nul_problem(text: str) -> str | None:
    """Why `text` cannot be stored in the cache database (PostgreSQL refuses NUL in text); else None."""
    return "contains a character that cannot be stored (NUL)" if "\x00" in text else None


def printable(text: str) -> str:
    """`text` with control characters written as escapes (`\\x00`), for keeping refused input in a log row."""
    return CONTROL.sub(lambda m: repr(m.group())[1:-1], text)

"""One rule for text the dashboard did not write: it is shown as text, never as Markdown or HTML.

Names, emails, phones, descriptions, metadata, addresses, Stripe's failure messages and anything read from
the URL are customer- or attacker-controlled. Streamlit renders Markdown (plus its own `:red[…]`,
`:material/…:` directives and `$…$` LaTeX) in titles, headers, markdown, captions, alerts, metrics, toasts,
expander, button and radio labels. Pass every such value through `md()` where it meets one of them:

    st.title(md(customer["name"]))
    st.caption(f"{md(email)} · {md(phone)}")

Tables (`st.dataframe`), `st.code`, `st.text` and select-box options are plain text already: do not escape
there (the backslashes would show).

Links the dashboard makes itself are built only from ids that match Stripe's pattern (`safe_id`), and
only http(s) URLs are offered as links (`safe_url`).
"""

from __future__ import annotations

import math
import re
import string
from typing import Literal

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping all of them covers
# Markdown (\ ` * _ { } [ ] ( ) # + - . ! | < > ~ and autolinks), Streamlit's directives (':') and LaTeX ('$').
_SPECIAL = frozenset(string.punctuation)
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
# GitHub-flavoured Markdown (Streamlit's renderer) links "www.…" and "http(s)://…" in text *after* escapes are
# resolved, so backslashes cannot stop it; an invisible WORD JOINER between "www" and "." and between "http:"
# and "//" does (the address still reads, and copies, as one word).
_WORD_JOINER = "\u2060"
# (GFM links http(s):// only before a dotted domain, so "http://host/x" is left as it is.)
_AUTOLINK_START = re.compile(r"(www)(\.)|(https?:)(//)(?=[-\w]+\.[-\w])", re.IGNORECASE)
# An email whose local part was split that way ("www.ann@x.com") would be linked from its tail (mailto:ann@x.com):
# its "@" gets a joiner too, so it is no link at all.
_SPLIT_EMAIL = re.compile(r"(\u2060[-.\w+]*)@")
_JOINED = re.compile(r"(www\\?)\u2060(\\?\.)|(https?\\?:)\u2060(\\?/)|()\u2060(\\?@)", re.IGNORECASE)

IdKind = Literal["customer", "invoice", "subscription", "payment_method", "event"]
ID_PREFIX: dict[str, str] = {"customer": "cus", "invoice": "in", "subscription": "sub", "payment_method": "pm",
                             "event": "evt"}
_ID_RE = re.compile(r"(cus|in|sub|pm|evt)_[A-Za-z0-9_]{1,250}")


def md(value: object) -> str:
    """`value` as Markdown source that renders exactly its characters (one line; None and NaN are '').

    Every Markdown-significant character is backslash-escaped, line breaks become spaces (a value cannot
    start a heading, list or quote), so links, images, HTML, emphasis, Streamlit directives and LaTeX in
    the value are shown literally; web addresses ("www.…", "http(s)://…") get an invisible word joiner so
    GFM's autolinker does not make them links.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = _LINE_BREAKS.sub(" ", str(value))
    text = _AUTOLINK_START.sub(lambda m: _WORD_JOINER.join(g for g in m.groups() if g is not None), text)
    text = _SPLIT_EMAIL.sub(lambda m: m.group(1) + _WORD_JOINER + "@", text)
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)


def md_id(value: object) -> str:
    """A Stripe id as Markdown: unchanged when it is one (letters, digits and intraword underscores render
    as themselves, and a widget's accessible name stays the id), escaped with `md()` otherwise."""
    return value if isinstance(value, str) and _ID_RE.fullmatch(value) else md(value)


def safe_id(kind: IdKind, value: object) -> str | None:
    """`value` when it is a Stripe id of this kind (`cus_…`, `in_…`, `sub_…`, `pm_…`, `evt_…`), else None."""
    if not isinstance(value, str):
        return None
    m = _ID_RE.fullmatch(value)
    return value if m and m.group(1) == ID_PREFIX[kind] else None


def safe_url(value: object) -> str | None:
    """An http(s) URL from Stripe (hosted invoice page), or None for anything else (javascript:, data:, …)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    return url if re.match(r"https?://[^\s\\]+\Z", url, re.IGNORECASE) else None


def plain(markdown: str) -> str:
    """The text `md()` escaped, back as it reads on screen (for files and tests)."""
    markdown = _JOINED.sub(lambda m: "".join(g for g in m.groups() if g is not None), markdown)
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)

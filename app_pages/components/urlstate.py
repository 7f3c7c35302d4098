"""A page's view in its URL: search text, filters, sort and page number as query parameters, both ways.

    url = UrlState("cust")                                  # the page's widget-key prefix
    url.bind("cust_search", Text(max_len=200), label="Search")  # before st.text_input(key="cust_search")
    st.text_input("Search", key="cust_search")

`bind` runs before its widget is created. On the page's first run in a session (a shared link, a reload), in
a run started by the browser's Back or Forward, and for a widget whose state Streamlit dropped (it was not
drawn on the page shown in between) the URL wins: its value, checked by
the codec, is put into the widget's session state. Otherwise the widget wins: its value is written to the
URL, and a value equal to the default is removed from it, so a URL names only what differs. A value the
codec refuses (unknown option, not a date, too long, control characters) is dropped from the URL, the
widget falls back to its default and a short note names the field; the value itself is never shown.

Keys are `<prefix>_<name>`, and the query parameter is the key itself, so pages never share a parameter.
What a page last wrote is remembered (`saved`), so a link back to it (customer detail's "Back to customer
search") reopens the same view.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from app_pages.components.text import md

_MEMORY = "_urlstate"  # session key: {prefix: {param: encoded value last written}}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Invalid(ValueError):
    """A URL value the codec refuses."""


class Codec(Protocol):
    """Turns a widget value into URL text and back; `decode` raises Invalid for anything it does not accept."""

    def encode(self, value: Any) -> str | list[str]: ...

    def decode(self, raw: list[str]) -> Any: ...


def _one(raw: list[str]) -> str:
    if len(raw) != 1:
        raise Invalid("one value expected")
    return raw[0]


@dataclass(frozen=True)
class Text:
    """Free text (a search box): at most `max_len` characters, no control characters."""

    max_len: int = 200

    def encode(self, value: Any) -> str:
        return str(value)

    def decode(self, raw: list[str]) -> str:
        text = _one(raw)
        if len(text) > self.max_len or _CONTROL.search(text):
            raise Invalid("text too long or with control characters")
        return text


@dataclass(frozen=True)
class Choice:
    """One of `options` (a select box); the URL holds the option as the box shows it."""

    options: Sequence[Any]

    def encode(self, value: Any) -> str:
        return str(value)

    def decode(self, raw: list[str]) -> Any:
        text = _one(raw)
        for option in self.options:
            if str(option) == text:
                return option
        raise Invalid("not one of the options")


@dataclass(frozen=True)
class Choices:
    """Several of `options` (a multiselect), in the order given, each once."""

    options: Sequence[Any]

    def encode(self, value: Any) -> list[str]:
        return [str(v) for v in value]

    def decode(self, raw: list[str]) -> list[Any]:
        by_text = {str(o): o for o in self.options}
        if any(r not in by_text for r in raw) or len(set(raw)) != len(raw):
            raise Invalid("not among the options")
        return [by_text[r] for r in raw]


@dataclass(frozen=True)
class Flag:
    """A checkbox: `1` when ticked (an unticked box is the default and leaves the URL)."""

    def encode(self, value: Any) -> str:
        return "1" if value else "0"

    def decode(self, raw: list[str]) -> bool:
        text = _one(raw).lower()
        if text not in {"1", "0", "true", "false"}:
            raise Invalid("not a yes/no value")
        return text in {"1", "true"}


@dataclass(frozen=True)
class Whole:
    """A whole number from `low` to `high` (a page number, a number of days)."""

    low: int = 1
    high: int = 100_000

    def encode(self, value: Any) -> str:
        return str(int(value))

    def decode(self, raw: list[str]) -> int:
        text = _one(raw)
        if not re.fullmatch(r"\d{1,7}", text) or not self.low <= int(text) <= self.high:
            raise Invalid("not a whole number in range")
        return int(text)


@dataclass(frozen=True)
class Number:
    """A number from `low` to `high` in steps of `step` from `low` (a slider)."""

    low: float
    high: float
    step: float

    def encode(self, value: Any) -> str:
        return f"{float(value):g}"

    def decode(self, raw: list[str]) -> float:
        text = _one(raw)
        if not re.fullmatch(r"\d{1,3}(\.\d{1,4})?", text):
            raise Invalid("not a number")
        steps = (float(text) - self.low) / self.step
        if not self.low <= float(text) <= self.high or abs(steps - round(steps)) > 1e-6:
            raise Invalid("not a number on the scale")
        return round(self.low + round(steps) * self.step, 6)


@dataclass(frozen=True)
class _Days:
    """Dates as YYYY-MM-DD from `earliest` to `latest` (what Day and DayRange share)."""

    earliest: date = date(1970, 1, 1)
    latest: date = date(2100, 12, 31)

    def day(self, text: str) -> date:
        try:
            found = date.fromisoformat(text)
        except ValueError as exc:
            raise Invalid("not a date") from exc
        if not self.earliest <= found <= self.latest:
            raise Invalid("date out of range")
        return found


@dataclass(frozen=True)
class Day(_Days):
    """A date as YYYY-MM-DD (a date input), from `earliest` to `latest`."""

    def encode(self, value: Any) -> str:
        return value.isoformat()

    def decode(self, raw: list[str]) -> date:
        return self.day(_one(raw))


@dataclass(frozen=True)
class DayRange(_Days):
    """A date range as YYYY-MM-DD..YYYY-MM-DD within `earliest`–`latest`, first day not after the last."""

    def encode(self, value: Any) -> str:
        return "..".join(d.isoformat() for d in value)

    def decode(self, raw: list[str]) -> tuple[date, date]:
        parts = _one(raw).split("..")
        if len(parts) != 2:
            raise Invalid("not a date range")
        first, last = (self.day(p) for p in parts)
        if first > last:
            raise Invalid("range ends before it starts")
        return first, last


def _memory(prefix: str) -> dict[str, str | list[str] | None]:
    return st.session_state.setdefault(_MEMORY, {}).setdefault(prefix, {})


def _from_url(param: str) -> list[str] | None:
    values = st.query_params.get_all(param)
    return list(values) if values else None


class UrlState:
    """The query parameters of one page (`prefix`): `bind` each widget key before its widget is created."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ignored: list[str] = []  # labels of the fields whose URL value was refused in this run

    def bind(self, key: str, codec: Codec, *, default: Any = None, label: str | None = None) -> None:
        """Reconcile `key`'s session state with the query parameter of the same name (see the module doc);
        `label` names the field in the note about a refused value."""
        if not key.startswith(f"{self.prefix}_"):
            raise ValueError(f"{key!r} does not start with the page prefix {self.prefix!r}")
        memory = _memory(self.prefix)
        raw = _from_url(key)
        from_url = (
            # the first run of this page in this session: a shared link, a reload, an edited address
            (key not in memory and raw is not None)
            # Streamlit dropped the widget's state (a run that did not draw it: another page) and the URL has it
            or (key not in st.session_state and raw is not None)
            # the browser's Back or Forward brought another URL. Any other rerun whose URL differs from what this
            # session wrote carries a URL older than the last write (the click was sent before the browser got
            # it): the widgets are newer then, and win.
            or (history_navigation() and _normal(raw) != _normal(memory.get(key)))
        )
        if from_url:
            value = default
            if raw is not None:
                try:
                    value = codec.decode(raw)
                except Invalid:
                    self.ignored.append(label or key)
            st.session_state[key] = value
        value = st.session_state.get(key, default)
        try:
            encoded = None if _is_default(value, default) else codec.encode(value)
        except (TypeError, ValueError, AttributeError, OverflowError):  # a state the URL cannot hold (NaN days)
            encoded = None
        if _normal(encoded) != _normal(raw):
            if encoded is None:
                del st.query_params[key]
            else:
                st.query_params[key] = encoded
        memory[key] = encoded

    def render_notes(self) -> None:
        """One short line naming the fields whose URL value was ignored (the values themselves are not shown)."""
        if self.ignored:
            fields = ", ".join(f"“{md(n)}”" for n in dict.fromkeys(self.ignored))
            st.caption(f":material/link_off: The link's value for {fields} is not valid here and was ignored.")
            self.ignored.clear()


def history_navigation() -> bool:
    """True in a run the browser's Back or Forward started (Streamlit marks those runs)."""
    ctx = get_script_run_ctx()
    return bool(getattr(ctx, "is_history_navigation", False))


def saved(prefix: str) -> dict[str, str | list[str]]:
    """The query parameters page `prefix` last wrote in this session (for a link back to that view)."""
    return {k: v for k, v in st.session_state.get(_MEMORY, {}).get(prefix, {}).items() if v is not None}


def _normal(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value)
    return values or None


def _is_default(value: Any, default: Any) -> bool:
    if value is None or value == default:
        return True
    return isinstance(value, list | tuple) and not value and not default



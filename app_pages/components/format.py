"""The one display format of the dashboard: every number, amount, date and flag a page shows goes through here.

- Money: amount + ISO code in the currency's own decimals with thousands separators ("1,234.50 USD",
  "1,200 JPY", "3.500 KWD"; `lib.money`, drawn by Babel). A row without a currency shows the number alone.
- Balances: "credit 10.00 USD" / "owes 5.00 USD" / "0.00 USD"; the sign is explained once, in the column help.
- Dates: "2026-11-30 · 3 days ago" (with a time for events: "2026-11-30 14:05 · 2 h ago"), all in UTC.
- Flags: "✓" or nothing. Counts: "12,345".

Tables (st.dataframe) get the same text through the column helpers below: every money cell is the text
`money()` makes, in its own row's currency and decimals. A grid number column has one format per column,
so it cannot show 1,200 JPY beside 3.500 KWD without rounding one of them (KWD showed as "3.5"), and even
in a one-currency table its cell text (what a screen reader and the browser tests read) is the raw number,
not what is drawn. The cost: clicking a money column's header sorts the visible page as text; the page's
Sort box (in SQL, across all pages) is the real order, and amounts of different currencies have no common
order anyway. Dates are text whose ISO prefix sorts in time order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from lib.columns import BALANCE_HELP
from lib.money import decimals, format_major, format_money, missing

ROW_PX = 35  # st.dataframe's row (and header) height
WRAP_ROW_PX = 66  # a row taller than 4rem (64 px): Streamlit then wraps long text onto more lines
MAX_ROWS = 50  # a table taller than this scrolls inside itself (a 100-row page, 60 subscriptions)
TICK = "✓"


# --- single values ------------------------------------------------------------------------------------


def money(amount: object, currency: object) -> str:
    """Minor units as '1,234.50 USD' ('' for no amount; the number alone for an unknown currency)."""
    return format_money(amount, currency)


def money_lines(rows: Iterable[Mapping[str, Any]], amount: str = "amount") -> str:
    """'1,200.00 USD · 30,000 JPY': one figure per currency, never added across currencies; 'none' if empty."""
    return " · ".join(t for r in rows if (t := money(r[amount], r.get("currency")))) or "none"


def balance(amount: object, currency: object) -> str:
    """Stripe's signed customer balance in words: 'credit 10.00 USD' (negative: the customer holds credit),
    'owes 5.00 USD' (positive: added to the next invoice), '0.00 USD' for zero, '' for no balance at all."""
    if missing(amount):
        return ""
    if int(amount) == 0:  # type: ignore[call-overload]
        return money(0, currency)
    word = "credit" if int(amount) < 0 else "owes"  # type: ignore[call-overload]
    return f"{word} {money(abs(int(amount)), currency)}"  # type: ignore[call-overload]


def count(n: object) -> str:
    """A count with thousands separators ('12,345'); '—' when there is none."""
    if missing(n):
        return "—"
    return f"{int(n):,}"  # type: ignore[call-overload]


def tick(flag: object) -> str:
    """'✓' for a true flag, '' for false or missing (NaN, None)."""
    if flag is None or flag is pd.NA or missing(flag):
        return ""
    return TICK if bool(flag) else ""


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def relative(when: datetime | date, now: datetime | None = None) -> str:
    """'today', 'yesterday', 'in 3 days', '5 days ago', '4 months ago', 'in 2 years' (calendar days, UTC)."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    day = _utc(when).date() if isinstance(when, datetime) else when
    days = (day - today).days
    if days == 0:
        return "today"
    if abs(days) == 1:
        return "tomorrow" if days > 0 else "yesterday"
    n, unit = (abs(days), "day") if abs(days) < 60 else (abs(days) // 30, "month") if abs(days) < 730 \
        else (abs(days) // 365, "year")
    span = f"{n} {unit}s"
    return f"in {span}" if days > 0 else f"{span} ago"


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """'just now', '3 min ago', '2 h ago', '5 days ago'; 'never' for no time (for freshness, not dates)."""
    if when is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - _utc(when)).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400 * 2:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def when(value: object, *, time: bool = False, now: datetime | None = None) -> str:
    """A date the one way: '2026-11-30 · 3 days ago'; with `time`, '2026-11-30 14:05 · 2 h ago' (UTC).
    '' for no date (None, NaT, NaN)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, date):
        return ""
    if isinstance(value, datetime):
        value = _utc(value)
        return f"{value:%Y-%m-%d %H:%M} · {_hint(value, now)}" if time else f"{value:%Y-%m-%d} · {relative(value, now)}"
    return f"{value:%Y-%m-%d} · {relative(value, now)}"


def _hint(value: datetime, now: datetime | None) -> str:
    """A time's hint: 'N min ago' / 'N h ago' within the last two days, else the calendar-day hint."""
    elapsed = (now or datetime.now(UTC)) - value
    return ago(value, now) if timedelta(0) <= elapsed < timedelta(days=2) else relative(value, now)


def period_end(end: object, cancels: object) -> str:
    """A subscription's period end: '2026-12-30 · in 27 days', with '· cancels' when it ends then instead of
    renewing ('cancels' alone when the date is unknown)."""
    text = when(end)
    if not tick(cancels):
        return text
    return f"{text} · cancels" if text else "cancels"


PERIOD_END_HELP = "When the current period ends; “cancels”: the subscription ends then instead of renewing."


# --- table columns --------------------------------------------------------------------------------------


def table_height(rows: int, max_rows: int = MAX_ROWS, row_px: int = ROW_PX) -> int:
    """Pixels for a table that shows all of its `rows` (a page of 25 or 50) with no scrolling inside it; past
    `max_rows` it scrolls inside itself. `row_px`: the rows' height when it is not the default."""
    return ROW_PX + row_px * min(max(rows, 1), max_rows) + 3


def money_columns(df: pd.DataFrame, labels: Mapping[str, str], *, help: str | None = None,
                  width: int | None = None) -> dict[str, Any]:
    """Column configs for the money columns `labels` (field → header) of a frame whose amounts are in major
    units (`tables.frame(money=…)`) and whose `currency` column says each row's currency.

    Each cell becomes its text in its own row's currency ('3.500 KWD', '1,200 JPY', '12.50' without a
    currency, '' without an amount), right-aligned, so no row is rounded to another currency's decimals
    (see the module docstring). `df` is changed in place.
    """
    currencies = list(df["currency"]) if "currency" in df else [None] * len(df)
    configs: dict[str, Any] = {}
    for field, label in labels.items():
        if field in df:
            df[field] = ["" if missing(v) else format_major(v, c) for v, c in zip(df[field], currencies, strict=True)]
            configs[field] = st.column_config.TextColumn(label, help=help or "In the row's currency.", width=width,
                                                         alignment="right")
    return configs


def balance_column(df: pd.DataFrame, field: str, label: str = "Balance", *, minor: bool = False,
                   width: int | None = None) -> dict[str, Any]:
    """The balance column as words ('credit 10.00 USD'), with the sign explained once in its help. Amounts in
    major units unless `minor`. `df` is changed in place."""
    if field not in df:
        return {}
    currencies = list(df["currency"]) if "currency" in df else [None] * len(df)
    cells = []
    for v, c in zip(df[field], currencies, strict=True):
        if missing(v):
            cells.append("")
            continue
        units = int(v) if minor else round(float(v) * 10 ** decimals(c))
        cells.append(balance(units, c))
    df[field] = cells
    return {field: st.column_config.TextColumn(label, help=BALANCE_HELP, width=width, alignment="right")}


def date_columns(df: pd.DataFrame, labels: Mapping[str, str], *, time: bool = False,
                 help: Mapping[str, str] | None = None, now: datetime | None = None,
                 width: int | None = None) -> dict[str, Any]:
    """Date columns as '2026-11-30 · 3 days ago' text (ISO first, so they sort in time order). In place."""
    configs: dict[str, Any] = {}
    for field, label in labels.items():
        if field in df:
            df[field] = [when(v, time=time, now=now) for v in df[field].astype(object)]
            configs[field] = st.column_config.TextColumn(label, help=(help or {}).get(field), width=width)
    return configs


def tick_columns(df: pd.DataFrame, labels: Mapping[str, str], *, help: Mapping[str, str] | None = None
                 ) -> dict[str, Any]:
    """Yes/no columns as '✓' or nothing (narrow, readable at a glance). In place."""
    configs: dict[str, Any] = {}
    for field, label in labels.items():
        if field in df:
            df[field] = [tick(v) for v in df[field].astype(object)]
            configs[field] = st.column_config.TextColumn(label, width="small", help=(help or {}).get(field))
    return configs


def count_column(label: str, *, help: str | None = None, width: int | None = None) -> Any:
    """A count column: whole numbers with thousands separators ('12,345')."""
    return st.column_config.NumberColumn(label, format="%,d", help=help, width=width)


def long_text(label: str, *, width: int | str = "medium", help: str | None = None) -> Any:
    """A width-limited text column for long text (a name, a note): the start shows in the row; the page shows
    the whole text elsewhere (the row's details, an expander), or the table wraps it (`WRAP_ROW_PX` rows)."""
    return st.column_config.TextColumn(label, width=width, help=help)  # type: ignore[arg-type]


def pinned(label: str, *, width: int | None = None) -> Any:
    """The identifying column of a table (an id), pinned to the left so it stays in view."""
    return st.column_config.TextColumn(label, pinned=True, width=width)

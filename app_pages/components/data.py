"""How pages read the cache: every query from lib/queries.py, cached per filters for a short time.

`query("search_customers", filters=…, page=2)` runs `lib.queries.search_customers(session=…, …)` and keeps
the result for TTL seconds, keyed on the query name, its arguments and the database URL. A sync or a
follow-up change calls `clear()` so the next run reads fresh rows.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from lib import queries
from lib.config import get_settings
from lib.db import session_scope

TTL_SECONDS = 60


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=500)
def _cached(name: str, database_url: str, kwargs: dict[str, Any]) -> Any:
    with session_scope() as session:
        return getattr(queries, name)(session=session, **kwargs)


def query(name: str, /, **kwargs: Any) -> Any:
    """Run a lib.queries function by name through the cache (raises what the query raises)."""
    return _cached(name, get_settings().database_url, kwargs)


def clear() -> None:
    """Forget cached query results (after a sync or a change made from the dashboard)."""
    _cached.clear()

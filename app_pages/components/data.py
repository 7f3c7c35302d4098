"""How pages read the cache: every query from lib/queries.py, cached per filters for a short time.

`query("search_customers", filters=…, page=2)` runs `lib.queries.search_customers(session=…, …)` and keeps
the result for TTL seconds, keyed on the query name, its arguments, the database URL and the cache's change
stamp (`lib.cache_version`): a write made anywhere (another replica, the sync worker, a webhook) changes the
stamp, so every replica reads fresh rows within a second instead of after the TTL. A sync or a follow-up
change made here also calls `clear()`.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from lib import cache_version, queries
from lib.config import get_settings
from lib.db import session_scope

TTL_SECONDS = 60


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=500)
def _cached(name: str, database_url: str, stamp: cache_version.Generation, kwargs: dict[str, Any]) -> Any:
    with session_scope() as session:
        return getattr(queries, name)(session=session, **kwargs)


def query(name: str, /, **kwargs: Any) -> Any:
    """Run a lib.queries function by name through the cache (raises what the query raises)."""
    url = get_settings().database_url
    return _cached(name, url, _stamp(url), kwargs)


_last_stamp: dict[str, cache_version.Generation] = {}


def _stamp(url: str) -> cache_version.Generation:
    """The change stamp; when it moved, results under older stamps are dropped (memory, not correctness:
    the stamp in the key already keeps them from being served)."""
    stamp = cache_version.generation(url)
    if _last_stamp.setdefault(url, stamp) != stamp:
        _last_stamp[url] = stamp
        _cached.clear()
    return stamp


def clear() -> None:
    """Forget cached query results (after a sync or a change made from the dashboard)."""
    cache_version.forget()
    _cached.clear()


def csv_download(name: str, /, **kwargs: Any) -> bytes:
    """Run an export query (streamed into a spooled file) and hand Streamlit its bytes on click."""
    with session_scope() as session:
        out = getattr(queries, name)(session=session, **kwargs)
    with out:
        return out.read()

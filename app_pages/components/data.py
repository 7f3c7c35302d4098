"""How pages read the cache: every query from lib/queries.py, cached per filters for a short time.

`query("search_customers", filters=…, page=2)` runs `lib.queries.search_customers(session=…, …)` and keeps
the result for TTL seconds, keyed on the query name, its arguments, the database URL and the cache's change
stamp (`lib.cache_version`): a write made anywhere (another replica, the sync worker, a webhook) changes the
stamp, so every replica reads fresh rows within a second instead of after the TTL. A sync or a refresh made
here calls `clear()`, which drops this process's results and re-reads the stamp at once; a follow-up saved
here calls `written()`, which only re-reads the stamp (the follow-up's audit row moves it).
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
    return _cached(name, url, cache_version.key_for(name, cache_version.generation(url), kwargs), kwargs)


def written() -> None:
    """After a write made here that the change stamp covers (it leaves an audit row in its transaction: a
    follow-up): read the stamp again at the next query, so this process's next run shows the write. Results of
    queries that do not read what was written (`cache_version.key_for`) stay cached; `clear()` drops them all."""
    cache_version.forget()


def clear() -> None:
    """After a sync or a change made from the dashboard: forget this process's cached results and read the
    change stamp again, so the next run shows the change even where the stamp does not cover it (a direct
    write to the cache). Other replicas see the change through the stamp."""
    cache_version.forget()
    _cached.clear()

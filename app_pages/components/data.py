"""How pages read the cache: every query from lib/queries/, cached per filters for a short time.

`query(customers.search_customers, filters=…, page=2)` runs `lib.queries.customers.search_customers(session=…,
…)` and keeps the result for TTL seconds, keyed on the query's name (`cache_version.query_name`: module and
qualified name), its arguments, the database URL and the cache's change stamp (`lib.cache_version`): a write made
anywhere (another replica, the sync worker, a webhook) changes the stamp, so every replica reads fresh rows within
a second instead of after the TTL. A sync or a refresh made here calls `clear()`, which drops this process's
results and re-reads the stamp at once; a follow-up saved here calls `written()`, which only re-reads the stamp
(the follow-up's audit row moves it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from lib import cache_version
from lib.config import get_settings
from lib.db import session_scope

TTL_SECONDS = 60
T = TypeVar("T")


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=500)
def _cached(name: str, database_url: str, stamp: cache_version.Generation, kwargs: dict[str, Any],
            _fn: Callable[..., Any]) -> Any:
    """`_fn`'s result; `name` stands for `_fn` in the cache key (Streamlit hashes no argument named `_…`)."""
    with session_scope() as session:
        return _fn(session=session, **kwargs)


def query(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run a lib.queries function through the cache: `fn(session=…, **kwargs)`, raising what it raises."""
    url = get_settings().database_url
    name = cache_version.query_name(fn)
    result: T = _cached(name, url, cache_version.key_for(fn, cache_version.generation(url), kwargs), kwargs, fn)
    return result


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

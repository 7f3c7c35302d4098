"""Every page under AppTest on the messy world (sandbox seeded with `--messy`, synced by the real sync), for
every role: no exception, and no Markdown-rendering element shows a planted payload verbatim.

Rendering contract (with the pages' owner): every string from Stripe is backslash-escaped before any Markdown
rendering, so `[Verify your session](http://host/phish)` reaches the screen as text, never as a link (nor
`![x](…)` as an image fetched from a tracker, `**bold**` as bold, `:red[x]` as colour or `$x$` as math).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from lib import access
from lib.config import get_settings
from sandbox import messy
from tests.conftest import _backends
from tests.utils.apptest import PAGES_DIR
from tests.utils.login import as_role, rendered_text, write_roles
from tests.utils.messy_world import World, database, env, seed_world, sync_into
from tests.utils.sandbox import SandboxServer

pytestmark = pytest.mark.xdist_group("messy_pages")

ROLES = sorted(access.ROLES)
MARKDOWN_ELEMENTS = ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success")
SEARCHES = ("Verify your session", "Kuwait", "Unicorn", "HYPERLINK", "Maximiliana", "Ann", "Eve", "مريم",
            f"{messy.MD_BOLD} Kuwait", messy.MD_LINK, messy.FORMULA_LINK, "@SUM(A1)", "-2+3", "+1+1")


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    server = SandboxServer.start()
    try:
        yield seed_world(server)
    finally:
        server.stop()


@pytest.fixture(scope="module", params=_backends())
def cache_url(request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[str]:
    """The messy world synced once per backend into a database of this module's own."""
    with database(request.param, str(tmp_path_factory.mktemp("messy"))) as url:
        sync_into(world.server, url)
        yield url


@pytest.fixture
def app_env(world: World, cache_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for k, v in env(world.server, cache_url).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("ROLES_FILE", str(write_roles(tmp_path / "roles.toml")))
    get_settings.cache_clear()
    return cache_url


def run(page_file: str, role: str, *, query: dict[str, str] | None = None, **state: Any) -> AppTest:
    at = as_role(AppTest.from_file(str(PAGES_DIR / page_file), default_timeout=60), role)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def markdown_texts(at: AppTest) -> list[tuple[str, str]]:
    """(element kind, text) of everything the last run rendered as Markdown."""
    out = [(kind, str(e.value)) for kind in MARKDOWN_ELEMENTS for e in getattr(at, kind)]
    for m in at.metric:
        out += [("metric label", str(m.label)), ("metric value", str(m.value))]
    return out


def payloads_shown(at: AppTest) -> list[tuple[str, str]]:
    return [(kind, shown) for kind, shown in markdown_texts(at)
            if any(p in shown for p in messy.MARKDOWN_PAYLOADS)]


def exceptions(at: AppTest) -> list[str]:
    return [e.value for e in at.exception]


_runs: dict[tuple[Any, ...], AppTest] = {}


def cached_run(cache_url: str, page_file: str, role: str, query: dict[str, str] | None = None,
               **state: Any) -> AppTest:
    """One AppTest run per page, role and input, shared by the exception and the Markdown test."""
    key = (cache_url, page_file, role, tuple(sorted((query or {}).items())), tuple(sorted(state.items())))
    if key not in _runs:
        _runs[key] = run(page_file, role, query=query, **state)
    return _runs[key]


PAGES = [p.file for p in access.PAGES]
CASES = [c.key for c in messy.cases()]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES)
def test_page_raises_nothing(app_env: str, page: str, role: str) -> None:
    assert exceptions(cached_run(app_env, page, role)) == []


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_no_payload_as_markdown(app_env: str, page: str, role: str) -> None:
    assert payloads_shown(cached_run(app_env, page, role)) == []


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES)
def test_customer_detail_raises_nothing(app_env: str, world: World, case: str, role: str) -> None:
    at = cached_run(app_env, "customer_detail.py", role, query={"id": world.customers[case]})
    assert exceptions(at) == []


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES)
def test_customer_detail_renders_no_payload_as_markdown(app_env: str, world: World, case: str, role: str) -> None:
    at = cached_run(app_env, "customer_detail.py", role, query={"id": world.customers[case]})
    assert payloads_shown(at) == []


@pytest.mark.parametrize("case", [c for c in CASES if c != "deleted"])
def test_customer_detail_shows_the_customer(app_env: str, world: World, case: str) -> None:
    """The page is about the messy customer, not an error about it (the title is its name, email or id)."""
    at = cached_run(app_env, "customer_detail.py", "support", query={"id": world.customers[case]})
    assert [e.value for e in at.error] == []


@pytest.mark.parametrize("search", SEARCHES)
def test_customer_search_on_a_messy_name_raises_nothing(app_env: str, search: str) -> None:
    assert exceptions(cached_run(app_env, "customers.py", "support", cust_search=search)) == []


@pytest.mark.parametrize("search", SEARCHES)
def test_customer_search_on_a_messy_name_renders_no_payload_as_markdown(app_env: str, search: str) -> None:
    assert payloads_shown(cached_run(app_env, "customers.py", "support", cust_search=search)) == []


def test_customer_search_finds_the_messy_customer(app_env: str) -> None:
    at = cached_run(app_env, "customers.py", "support", cust_search="Unicorn")
    assert [c.value for c in at.caption][:1] == ["1 customer(s) · MRR is per customer, in the customer's currency"]


def test_failed_invoices_lists_the_messy_customers_invoice(app_env: str, world: World) -> None:
    at = cached_run(app_env, "failed_invoices.py", "finance")
    shown = "\n".join(str(df.value.to_dict()) for df in at.dataframe)
    assert world.failed_invoice in shown


def test_duplicates_shows_the_messy_twins(app_env: str, world: World) -> None:
    at = cached_run(app_env, "duplicates.py", "admin")
    assert world.customers["markdown_twin"] in rendered_text(at)


@pytest.mark.parametrize(("case", "mrr"), [("no_email_jpy", "1,200 JPY"), ("no_name_krw", "15,000 KRW"),
                                          ("markdown_kwd", "3.500 KWD"), ("html_bhd", "12.345 BHD")])
def test_customer_detail_shows_mrr_in_the_currencys_own_decimals(app_env: str, world: World, case: str,
                                                                   mrr: str) -> None:
    """Zero-decimal (JPY, KRW) and three-decimal (KWD, BHD) amounts: ¥1,200 is not 12.00, 3.500 KWD not 35.00."""
    at = cached_run(app_env, "customer_detail.py", "support", query={"id": world.customers[case]})
    assert [m.value for m in at.metric if m.label == "MRR"] == [mrr]


def test_deleted_customer_with_invoices_says_it_was_probably_deleted(app_env: str, world: World) -> None:
    """After a full sync the deleted customer has no row (Stripe's list leaves it out) but its invoices stay."""
    at = cached_run(app_env, "customer_detail.py", "support", query={"id": world.customers["deleted"]})
    assert [w.value for w in at.warning if "probably deleted in Stripe" in w.value] != []


def test_deleted_customer_with_invoices_shows_them(app_env: str, world: World) -> None:
    at = cached_run(app_env, "customer_detail.py", "support", query={"id": world.customers["deleted"]})
    invoices = next(d.value for d in at.dataframe if "amount_due" in d.value.columns)
    assert len(invoices) >= 1

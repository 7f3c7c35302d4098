"""The pages as a person sees them, in Debian's chromium at 1440×900 and 1280×800, on the messy account
(JPY, KRW, KWD and BHD beside USD, 300-character names, formulas): each table's columns for its job are
in view without scrolling sideways, every money cell follows the one format in its currency's decimals, and
a screenshot of each page at each size lands in test-artifacts/ (`make clean` removes it).

The dashboard runs as the no-login local demo, whose one user is an admin: the role that sees every page.

How a column is known to be in view: Streamlit's table is a canvas (glide-data-grid) with an accessible
twin (`[role=grid]`) that holds only the columns and rows drawn in the grid's visible window. A column is
wholly in view when it is in that window and is not its last, partly drawn column (the last one is wholly
in view only when nothing overflows sideways). The grid's header row itself must lie inside the viewport.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlmodel import Session

from lib.models import AuditLog
from tests.utils.browser import CHROMIUM, CHROMIUM_ARGS, dashboard, screenshot, wait_idle
from tests.utils.messy_world import World, database, env, seed_world, sync_into
from tests.utils.sandbox import SandboxServer

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("layout_browser")]

SIZES = {"1440x900": (1440, 900), "1280x800": (1280, 800)}
HEADER_PX = 35

# page → tables (told apart by one header only they have) → the columns the page's job needs, in the
# order of use; at 1280 px the first `narrow` of them (the identifying column first) must still be in view
TABLES: dict[str, list[tuple[str, tuple[str, ...], int]]] = {
    "customers": [("Flags", ("Customer", "Name", "Email", "MRR", "Balance", "Flags", "Created"), 5)],
    "subscriptions": [("Items", ("Subscription", "Email", "Status", "Items", "MRR", "Period ends", "Trial ends"),
                       5)],
    "customer": [
        ("Items", ("Subscription", "Status", "Items", "MRR", "Period ends", "Trial ends"), 5),
        ("Remaining", ("Invoice", "Status", "Due", "Remaining", "Attempts", "Decline", "Next retry", "Created",
                       "Pay page"), 6),
        ("Last 4", ("Payment method", "Default", "Brand", "Last 4", "Expires"), 5),
    ],
    "failed-invoices": [
        ("Meaning", ("Decline code", "Invoices", "At risk", "Meaning", "Suggested next step"), 4),
        ("Follow-up", ("Invoice", "Email", "At risk", "Decline code", "Next retry", "Age (days)", "Follow-up",
                       "Note"), 5),
    ],
    "audit": [("Actor", ("When", "Actor", "Action", "Customer", "Result", "Error"), 5)],
    "sync": [("Objects written", ("Started", "Mode", "Status", "Seconds", "Objects written", "Stripe requests",
                                  "Error"), 5)],
}
MONEY_HEADERS = ("MRR", "Balance", "At risk", "Due", "Remaining", "Paid", "Failed", "Recovered")
# "1,234.50 USD", "1,200 JPY", "credit 3.500 KWD", "12.50" (no currency), or an empty cell
MONEY = re.compile(r"^(?:(?:credit|owes) )?-?\d{1,3}(?:,\d{3})*(?:\.(?P<dec>\d+))?(?: (?P<code>[A-Z]{3}))?$")
DECIMALS = {"JPY": 0, "KRW": 0, "KWD": 3, "BHD": 3}
READ_GRID = """el => {
    const scroller = el.querySelector('.dvn-scroller');
    const heads = [...el.querySelectorAll('[role=columnheader]')];
    return {
        headers: heads.map(h => h.textContent),
        overflows: scroller ? scroller.scrollWidth > scroller.clientWidth + 1 : false,
        cells: [...el.querySelectorAll('[role=gridcell]')].map(c => [c.getAttribute('aria-colindex'), c.textContent]),
        colindex: Object.fromEntries(heads.map(h => [h.textContent, h.getAttribute('aria-colindex')])),
    };
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    """The messy account synced into SQLite, an audit entry with a long error, served by the real dashboard."""
    server = SandboxServer.start()
    try:
        world = seed_world(server)
        with database("sqlite", str(tmp_path_factory.mktemp("layout_browser"))) as url:
            sync_into(server, url)
            engine = create_engine(url)
            with Session(engine) as session:
                session.add(AuditLog(actor="finance.lead@example.com", role="finance", action="portal_link",
                                     customer_id=world.customers["formula_failed"], result="failed",
                                     error="Stripe answered 400: " + "No configuration provided " * 8))
                session.commit()
            engine.dispose()
            with dashboard(env(server, url)) as base:
                yield base, world
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def path(page: str, world: World) -> str:
    return f"customer?id={world.customers['formula_failed']}" if page == "customer" else page


def open_page(browser: Any, base: str, where: str, size: str) -> Any:
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height})
    tab = context.new_page()
    tab.goto(f"{base}/{where}")
    wait_idle(tab, timeout=60_000)
    tab.locator("h1").first.wait_for()
    return tab


def grid(tab: Any, header: str) -> Any:
    """The table that has a column `header`, scrolled into view."""
    found = tab.locator("[data-testid='stDataFrame']").filter(
        has=tab.locator("[role=columnheader]", has_text=re.compile(f"^{re.escape(header)}$")))
    found.wait_for(timeout=30_000)
    found.evaluate("el => el.scrollIntoView({block: 'start'})")  # its header row at the top, not its middle
    tab.wait_for_function("el => el.getBoundingClientRect().top > -1", arg=found.element_handle())  # sub-pixel
    return found


def out_of_view(tab: Any, table: Any, required: tuple[str, ...]) -> list[str]:
    """The required columns that are not wholly inside the viewport (empty: all are)."""
    box = table.bounding_box()
    viewport = tab.viewport_size
    if box is None or box["x"] < 0 or box["x"] + box["width"] > viewport["width"]:
        return ["(the table itself runs past the viewport's edge)"]
    if box["y"] <= -1 or box["y"] + HEADER_PX > viewport["height"]:
        return ["(the header row is outside the viewport)"]
    seen = table.evaluate(READ_GRID)
    drawn = seen["headers"]
    partial = drawn[-1:] if seen["overflows"] else []
    return [h for h in required if h not in drawn or h in partial]


@dataclass
class Seen:
    """What one page load at one size showed: per table (by its telling header) the required columns out of
    view and the money cells off the one format, and the customers table's MRR cells."""

    out_of_view: dict[str, list[str]] = field(default_factory=dict)
    bad_money: dict[str, list[str]] = field(default_factory=dict)
    mrr_cells: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def seen(browser: Any, site: tuple[str, World]) -> Callable[[str, str], Seen]:
    """Each page is loaded once per size (a load takes seconds under load); every test reads what it showed."""
    base, world = site
    loaded: dict[tuple[str, str], Seen] = {}

    def look(page: str, size: str) -> Seen:
        if (page, size) not in loaded:
            tab = open_page(browser, base, path(page, world), size)
            result = Seen()
            try:
                for header, required, narrow in TABLES.get(page, []):
                    table = grid(tab, header)
                    result.out_of_view[header] = out_of_view(tab, table, required if size == "1440x900"
                                                             else required[:narrow])
                    result.bad_money[header] = bad_money_cells(table)
                    if page == "customers":
                        grid_seen = table.evaluate(READ_GRID)
                        mrr = grid_seen["colindex"]["MRR"]
                        result.mrr_cells = [text for col, text in grid_seen["cells"] if col == mrr]
                    screenshot(tab, f"layout_{page}_{header.replace(' ', '-').lower()}_{size}")
                if page not in TABLES:
                    screenshot(tab, f"layout_{page}_{size}")
                    result.out_of_view["page"] = ["(the page scrolls sideways)"] if tab.evaluate(
                        "() => document.documentElement.scrollWidth - window.innerWidth") > 0 else []
            finally:
                tab.context.close()
            loaded[page, size] = result
        return loaded[page, size]

    return look


def bad_money_cells(table: Any) -> list[str]:
    """Money cells (of the columns in MONEY_HEADERS) that do not follow the one format or have another number
    of decimals than their currency's."""
    seen = table.evaluate(READ_GRID)
    columns = {seen["colindex"][h] for h in MONEY_HEADERS if h in seen["colindex"]}
    bad = []
    for col, text in seen["cells"]:
        if col not in columns or text == "":
            continue
        shown = MONEY.fullmatch(text)
        if shown is None or len(shown["dec"] or "") != DECIMALS.get(shown["code"] or "", 2):
            bad.append(text)
    return bad


PAGES = [*TABLES, "overview", "duplicates"]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("page", PAGES)
def test_the_columns_of_the_job_are_in_view(seen: Callable[[str, str], Seen], page: str, size: str) -> None:
    """Every table of the page shows the columns its job needs (at 1280 px the first ones by use); a page
    without a wide table does not scroll sideways. A screenshot per table (or page) and size is saved."""
    shown = seen(page, size)
    assert shown.out_of_view == {table: [] for table in shown.out_of_view}


@pytest.mark.parametrize("page", ["customers", "subscriptions", "customer", "failed-invoices"])
def test_money_cells_follow_the_one_format(seen: Callable[[str, str], Seen], page: str) -> None:
    shown = seen(page, "1440x900")
    assert shown.bad_money == {table: [] for table in shown.bad_money}


def test_the_messy_kwd_customer_is_on_the_first_customers_page(seen: Callable[[str, str], Seen]) -> None:
    assert [t for t in seen("customers", "1440x900").mrr_cells if t.endswith(" KWD")] != []


def test_a_mixed_currency_table_shows_kwd_with_three_decimals(seen: Callable[[str, str], Seen]) -> None:
    """The customers list holds USD, JPY and KWD rows at once; KWD used to read "3.5" there."""
    kwd = [t for t in seen("customers", "1440x900").mrr_cells if t.endswith(" KWD")]
    assert [t for t in kwd if not re.fullmatch(r"-?[\d,]+\.\d{3} KWD", t)] == []

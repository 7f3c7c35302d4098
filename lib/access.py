"""Who may open which page and do which action: one matrix, checked by navigation, pages and actions."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("support", "staff", "finance", "admin")
ALL = frozenset(ROLES)


@dataclass(frozen=True)
class PageSpec:
    key: str  # also the url path and the widget-key prefix
    file: str  # under app_pages/
    title: str
    icon: str
    section: str
    roles: frozenset[str]


PAGES: tuple[PageSpec, ...] = (
    PageSpec("overview", "overview.py", "Overview", ":material/home:", "Billing", ALL),
    PageSpec("customers", "customers.py", "Customers", ":material/group:", "Billing", ALL),
    PageSpec("customer", "customer_detail.py", "Customer detail", ":material/person:", "Billing", ALL),
    PageSpec("subscriptions", "subscriptions.py", "Subscriptions", ":material/autorenew:", "Billing", ALL),
    PageSpec(
        "failed-invoices", "failed_invoices.py", "Failed invoices", ":material/money_off:", "Finance",
        frozenset({"staff", "finance", "admin"}),
    ),
    PageSpec("duplicates", "duplicates.py", "Duplicates", ":material/call_merge:", "Admin", frozenset({"admin"})),
    PageSpec("audit", "audit.py", "Audit log", ":material/policy:", "Admin", frozenset({"admin"})),
    PageSpec("sync", "sync.py", "Sync", ":material/sync:", "Admin", ALL),
)

ACTIONS: dict[str, frozenset[str]] = {
    "portal_link": frozenset({"staff", "finance", "admin"}),
    "bulk_portal_links": frozenset({"finance", "admin"}),
    "followup": frozenset({"finance", "admin"}),
    "merge": frozenset({"admin"}),
    "refresh": ALL,
    "export_audit": frozenset({"admin"}),
}


def page(key: str) -> PageSpec:
    return next(p for p in PAGES if p.key == key)


def may_open(roles: frozenset[str] | set[str], key: str) -> bool:
    return bool(page(key).roles & set(roles))


def may_do(roles: frozenset[str] | set[str], action: str) -> bool:
    return bool(ACTIONS[action] & set(roles))

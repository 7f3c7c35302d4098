"""Who may open which page and do which action: one matrix, checked by navigation, pages and actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["support", "staff", "finance", "admin"]
# What a role may do beyond opening pages (checked when the action runs, and audited).
Action = Literal["portal_link", "bulk_portal_links", "followup", "retry_invoice", "merge", "refresh", "export_audit"]

ROLES: tuple[Role, ...] = ("support", "staff", "finance", "admin")
ALL: frozenset[Role] = frozenset(ROLES)


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

ACTIONS: dict[Action, frozenset[Role]] = {
    "portal_link": frozenset({"staff", "finance", "admin"}),
    "bulk_portal_links": frozenset({"finance", "admin"}),
    "followup": frozenset({"finance", "admin"}),
    "retry_invoice": frozenset({"finance", "admin"}),  # charge a failed invoice now (lib/invoice_retry.py)
    "merge": frozenset({"admin"}),
    "refresh": ALL,
    "export_audit": frozenset({"admin"}),
}


def page(key: str) -> PageSpec:
    return next(p for p in PAGES if p.key == key)


def may_open(roles: frozenset[str] | set[str], key: str) -> bool:
    return bool(page(key).roles & set(roles))


def may_do(roles: frozenset[str] | set[str], action: Action) -> bool:
    return bool(ACTIONS[action] & set(roles))


# --- who has which role: rules from roles.toml ---------------------------------------------------


class RolesFileError(ValueError):
    """roles.toml is unreadable or malformed; the message names the file and what to fix."""


@dataclass(frozen=True)
class RoleRules:
    """Role grants by exact email, by email domain and by the provider's group claim; `trusted_email_issuers`
    are the providers (`iss` claim) whose emails count as verified when they send no `email_verified`."""

    emails: dict[str, frozenset[str]]
    domains: dict[str, frozenset[str]]
    groups: dict[str, frozenset[str]]
    group_claim: str = "groups"
    trusted_email_issuers: frozenset[str] = frozenset()


NO_RULES = RoleRules(emails={}, domains={}, groups={})


def _names(raw: object, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise RolesFileError(f"{where} must be a list of strings, e.g. [\"alice@example.com\"].")
    return [x.strip() for x in raw if x.strip()]


def _issuers(raw: object, source: str) -> frozenset[str]:
    """`trusted_email_issuers`: each an issuer URL exactly as the provider's `iss` claim carries it."""
    where = f"{source}: trusted_email_issuers"
    issuers = _names(raw, where)
    bad = [i for i in issuers if not i.startswith(("https://", "http://"))]
    if bad:
        raise RolesFileError(f"{where} must hold issuer URLs as the provider's iss claim has them, e.g. "
                             f"[\"https://accounts.example.com\"]; not {bad[0]!r}.")
    return frozenset(issuers)


def parse_role_rules(data: dict[str, object], *, source: str = "roles.toml") -> RoleRules:
    """Turn the parsed TOML into lookup tables; unknown roles or keys are errors, not silent no-ops."""
    group_claim = data.get("group_claim", "groups")
    if not isinstance(group_claim, str) or not group_claim:
        raise RolesFileError(f"{source}: group_claim must be a claim name such as \"groups\".")
    roles_table = data.get("roles", {})
    if not isinstance(roles_table, dict):
        raise RolesFileError(f"{source}: [roles.<role>] tables expected.")
    unknown_top = set(data) - {"group_claim", "trusted_email_issuers", "roles"}
    if unknown_top:
        raise RolesFileError(f"{source}: unknown keys {sorted(unknown_top)}; use group_claim, "
                             "trusted_email_issuers and [roles.<role>].")
    trusted = _issuers(data.get("trusted_email_issuers"), source)
    emails: dict[str, set[str]] = {}
    domains: dict[str, set[str]] = {}
    groups: dict[str, set[str]] = {}
    for role, grant in roles_table.items():
        if role not in ROLES:
            raise RolesFileError(f"{source}: unknown role {role!r}; the roles are {', '.join(ROLES)}.")
        if not isinstance(grant, dict):
            raise RolesFileError(f"{source}: [roles.{role}] must be a table with emails, domains, groups.")
        bad = set(grant) - {"emails", "domains", "groups"}
        if bad:
            raise RolesFileError(f"{source}: [roles.{role}] has unknown keys {sorted(bad)}.")
        for email in _names(grant.get("emails"), f"{source}: roles.{role}.emails"):
            emails.setdefault(email.lower(), set()).add(role)
        for domain in _names(grant.get("domains"), f"{source}: roles.{role}.domains"):
            domains.setdefault(domain.lower().lstrip("@"), set()).add(role)
        for group in _names(grant.get("groups"), f"{source}: roles.{role}.groups"):
            groups.setdefault(group, set()).add(role)
    freeze = lambda table: {k: frozenset(v) for k, v in table.items()}  # noqa: E731
    return RoleRules(emails=freeze(emails), domains=freeze(domains), groups=freeze(groups), group_claim=group_claim,
                     trusted_email_issuers=trusted)


def load_role_rules(path: str) -> RoleRules:
    """Read roles.toml; a missing file means nobody has a role (the no-access page says so)."""
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return NO_RULES
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:  # not UTF-8 is not TOML either
        raise RolesFileError(f"{path} could not be read: {exc}. Fix the file or point ROLES_FILE elsewhere.") from None
    return parse_role_rules(data, source=path)


def roles_for(rules: RoleRules, *, email: str, groups: list[str] | tuple[str, ...] = ()) -> frozenset[str]:
    """The union of every role granted to this email, its domain and its groups."""
    email = (email or "").strip().lower()
    found: set[str] = set()
    if "@" in email:
        found |= rules.emails.get(email, frozenset())
        found |= rules.domains.get(email.rsplit("@", 1)[1], frozenset())
    for group in groups:
        found |= rules.groups.get(str(group), frozenset())
    return frozenset(found)

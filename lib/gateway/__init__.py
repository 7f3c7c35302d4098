"""The one place that talks to Stripe: a StripeClient, a request budget, retries, and errors by type.

Callers read as Stripe's own resources do (`gw.customers.retrieve`, `gw.subscriptions.create`,
`gw.tax_ids.create`, `gw.invoices.pay`, `gw.billing_portal.create_session`, …) and catch the GatewayError
subclass they care about (`gw.NotFound`, `gw.RateLimited`, …; see lib/gateway/errors.py), whose
`user_message` says what happened and what to do. The sync reads by path (`list_page`, `iter_pages`,
`retrieve`), parsed by orjson into plain dicts. The secret key never appears in a message or log.
"""

from lib.gateway import balance_transactions, billing_portal, customers, invoices, prices, subscriptions, tax_ids
from lib.gateway.billing_portal import PortalSession
from lib.gateway.bucket import TokenBucket, budget, low_priority, request_stats, requests_sent
from lib.gateway.client import API_VERSION, call, get_client, retry_delay
from lib.gateway.errors import (
    AuthFailed,
    CardDeclined,
    ErrorKind,
    GatewayError,
    IdempotencyConflict,
    InvalidRequest,
    NetworkError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    Unavailable,
    translate,
)
from lib.gateway.reads import (
    Page,
    checked_id,
    checked_path,
    complete_nested,
    decode,
    iter_list,
    iter_pages,
    list_all,
    list_page,
    retrieve,
)

__all__ = [
    "API_VERSION", "AuthFailed", "CardDeclined", "ErrorKind", "GatewayError", "IdempotencyConflict",
    "InvalidRequest", "NetworkError", "NotFound", "Page", "PermissionDenied", "PortalSession", "RateLimited",
    "ServerError", "TokenBucket", "Unavailable", "balance_transactions", "billing_portal", "budget", "call",
    "checked_id", "checked_path", "complete_nested", "customers", "decode", "get_client", "invoices", "iter_list",
    "iter_pages", "list_all", "list_page", "low_priority", "prices", "request_stats", "requests_sent", "retrieve",
    "retry_delay", "subscriptions", "tax_ids", "translate",
]

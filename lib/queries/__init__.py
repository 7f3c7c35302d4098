"""Every query the dashboard pages run: pure functions over the cache, filtered, sorted and paged in SQL, one
module per page.

- `paging`: what every list shares: `Page`, `Count`, `count_rows` (exact when cheap, else estimated),
  `count_label`, sorting, LIKE prefixes, dialect differences, `distinct_values`;
- `customers`: the Customers list: the search box (`parse_search`), filters, one page, CSV;
- `customer_detail`: one customer: cards, subscriptions, invoices, open amounts, timeline, merge marks;
- `subscriptions`: the Subscriptions list, totals, CSV, filter choices; the MRR rule;
- `failed`: the Failed invoices worklist, its breakdowns and CSV, recovery;
- `new_card`: the card a retry would charge now (the worklist and the customer page);
- `overview`: the Overview's MRR and table counts;
- `sync_health`: the Sync page and the header's freshness;
- `duplicates`: the Duplicates page's reads.

Pages pass the function itself through the cache (`query(customers.search_customers, filters=…)`,
app_pages/components/data.py). Rules: never load a whole table; CSV exports stream one query in batches
(`yield_per`) into a spooled file; money is in minor units per currency and is never summed across currencies;
the same SQL runs on SQLite and PostgreSQL. The names below are re-exported so `lib.queries.X` still reads as
before; new code imports from the page's module.
"""

from __future__ import annotations

from lib.queries.customer_detail import (
    MERGED_FROM_LIMIT,
    MergeMark,
    customer_invoices,
    customer_leftovers,
    customer_open_amounts,
    customer_payment_methods,
    customer_subscriptions,
    customer_timeline,
    event_history,
    get_customer,
    merged_from,
    merged_into,
)
from lib.queries.customers import (
    CUSTOMER_COLUMNS,
    CUSTOMER_SORTS,
    MAX_SEARCH_LEN,
    NAME_MATCH_CAP,
    CustomerFilters,
    Search,
    SearchError,
    customer_currencies,
    export_customers_csv,
    parse_search,
    search_customers,
)
from lib.queries.duplicates import customer_ids_matching, merged_since
from lib.queries.failed import (
    AGE_BUCKETS,
    FAILED_COLUMNS,
    FAILED_SORTS,
    FailedFilters,
    Recovery,
    at_risk_by_currency,
    decline_codes,
    export_failed_csv,
    failed_by_age,
    failed_by_decline_code,
    failed_currencies,
    failed_invoices,
    recovery,
    worklist_invoice,
)
from lib.queries.new_card import NEW_CARD_STATUSES, new_card_condition, new_card_hint
from lib.queries.overview import mrr_by_currency, table_counts
from lib.queries.paging import (
    COUNT_BUDGET_MS,
    COUNT_CAP,
    ESTIMATE_SAMPLE,
    EXACT_COUNT_LIMIT,
    FIRST_COUNT,
    PAGE_SIZES,
    Count,
    Page,
    approx_count,
    count_label,
    count_rows,
    distinct_values,
)
from lib.queries.subscriptions import (
    SUB_COLUMNS,
    SUB_MRR,
    SUB_SORTS,
    SUBSCRIPTION_STATUSES,
    SubscriptionFilters,
    counts_as_mrr,
    export_subscriptions_csv,
    list_subscriptions,
    mrr_or_none,
    subscription_choices,
    subscription_totals,
)
from lib.queries.sync_health import (
    cache_freshness,
    card_pass_progress,
    recent_sync_runs,
    sync_states,
    webhook_endpoints,
    webhook_stats,
)

__all__ = [
    'AGE_BUCKETS', 'COUNT_BUDGET_MS', 'COUNT_CAP', 'CUSTOMER_COLUMNS', 'CUSTOMER_SORTS', 'Count',
    'CustomerFilters', 'ESTIMATE_SAMPLE', 'EXACT_COUNT_LIMIT', 'FAILED_COLUMNS', 'FAILED_SORTS', 'FIRST_COUNT',
    'FailedFilters', 'MAX_SEARCH_LEN', 'MERGED_FROM_LIMIT', 'MergeMark', 'NAME_MATCH_CAP', 'NEW_CARD_STATUSES',
    'PAGE_SIZES', 'Page', 'Recovery', 'SUBSCRIPTION_STATUSES', 'SUB_COLUMNS', 'SUB_MRR', 'SUB_SORTS', 'Search',
    'SearchError', 'SubscriptionFilters', 'approx_count', 'at_risk_by_currency', 'cache_freshness',
    'card_pass_progress', 'count_label', 'count_rows', 'counts_as_mrr', 'customer_currencies',
    'customer_ids_matching', 'customer_invoices', 'customer_leftovers', 'customer_open_amounts',
    'customer_payment_methods', 'customer_subscriptions', 'customer_timeline', 'decline_codes',
    'distinct_values', 'event_history', 'export_customers_csv', 'export_failed_csv', 'export_subscriptions_csv',
    'failed_by_age', 'failed_by_decline_code', 'failed_currencies', 'failed_invoices', 'get_customer',
    'list_subscriptions', 'merged_from', 'merged_into', 'merged_since', 'mrr_by_currency', 'mrr_or_none',
    'new_card_condition', 'new_card_hint', 'parse_search', 'recent_sync_runs', 'recovery', 'search_customers',
    'subscription_choices', 'subscription_totals', 'sync_states', 'table_counts', 'webhook_endpoints',
    'webhook_stats', 'worklist_invoice',
]

"""The column names people see, one name per field: the pages' table headers and the CSV exports' header
rows both read them here, so a column is called the same on screen and in the file ("MRR", never `mrr` in
one and "MRR (USD)" in the other).

Each table is an ordered mapping of a query's field → its label; the order is the CSV's column order.
Imports nothing (lib/queries, lib/audit, lib/portal and the pages use it).
"""

from __future__ import annotations

from typing import Final

CUSTOMERS: Final = {
    "id": "Customer", "email": "Email", "name": "Name", "phone": "Phone", "created": "Created",
    "currency": "Currency", "mrr": "MRR", "balance": "Balance", "delinquent": "Delinquent", "deleted": "Deleted",
    "merged_into": "Merged into",
}
SUBSCRIPTIONS: Final = {
    "id": "Subscription", "customer_id": "Customer", "customer_email": "Email", "status": "Status",
    "currency": "Currency", "mrr": "MRR", "current_period_end": "Period ends",
    "cancel_at_period_end": "Cancels at period end", "trial_end": "Trial ends", "created": "Created",
}
FAILED_INVOICES: Final = {
    "id": "Invoice", "customer_id": "Customer", "customer_email": "Email", "number": "Number",
    "status": "Status", "currency": "Currency", "amount_remaining": "At risk", "amount_due": "Amount due",
    "attempt_count": "Attempts", "code": "Decline code", "meaning": "Meaning", "next_step": "Suggested next step",
    "next_payment_attempt": "Next retry", "created": "Created", "age_days": "Age (days)",
    "hosted_invoice_url": "Pay page", "followup_status": "Follow-up", "followup_note": "Note",
    "followup_by": "Follow-up by", "followup_at": "Follow-up saved", "new_card": "New card since the failure",
}
AUDIT: Final = {
    "created_at": "When", "actor": "Actor", "role": "Role", "action": "Action", "customer_id": "Customer",
    "object_id": "Object", "flow": "Flow", "result": "Result", "error": "Error", "correlation_id": "Correlation",
    "details": "Details",
}
BULK_LINKS: Final = {
    "customer": "Customer", "name": "Name", "email": "Email", "amount_due": "Amount due", "currency": "Currency",
    "link": "Portal link", "link_made_at_utc": "Link made", "error": "Error",
}
# Explanations shown once, as a column's help (the CSV keeps Stripe's signed number)
BALANCE_HELP: Final = ("“credit”: the customer holds credit that pays their next invoices; “owes”: an amount "
                       "added to their next invoice. Stripe stores a credit as a negative balance, and the CSV "
                       "keeps that sign.")

"""What a Stripe id looks like: one pattern per kind, checked before an id goes into a request path.

Stripe's ids are a fixed prefix, an underscore and letters and digits (`cus_NffrFeUfNV2Hib`); the sandbox
makes the same shape. An id with anything else in it (`cus_x/../cus_Y`, a space, `?`, `%2F`) is never a
real one, and put into a URL path it could address another object; so the gateway refuses it before any
request, and pages may use the same checks on what users type.
"""

from __future__ import annotations

import re
from enum import Enum


class IdKind(Enum):
    """The kinds of id the dashboard puts into Stripe URL paths, each with its prefixes and a plain name."""

    CUSTOMER = ("customer", ("cus",))
    SUBSCRIPTION = ("subscription", ("sub",))
    INVOICE = ("invoice", ("in",))
    # pm_ today; card_, src_ and ba_ are the older payment-method objects a customer may still have
    PAYMENT_METHOD = ("payment method", ("pm", "card", "src", "ba"))
    PAYMENT_INTENT = ("payment intent", ("pi",))

    def __init__(self, label: str, prefixes: tuple[str, ...]) -> None:
        self.label = label
        self.prefixes = prefixes
        self.pattern = re.compile(rf"(?:{'|'.join(prefixes)})_[A-Za-z0-9]+")


# The collection in a `/v1/<collection>/<id>` path whose id has a known shape.
COLLECTION_KINDS: dict[str, IdKind] = {
    "customers": IdKind.CUSTOMER,
    "subscriptions": IdKind.SUBSCRIPTION,
    "invoices": IdKind.INVOICE,
    "payment_methods": IdKind.PAYMENT_METHOD,
    "payment_intents": IdKind.PAYMENT_INTENT,
}
# Any other path segment (a collection name, or an id of another kind such as a custom product id): letters,
# digits, `_` and `-`, and dots only after the first character, so never `.` or `..`; no `/`, `?`, `#`, `%`.
SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


class InvalidId(ValueError):
    """A value that is not an id of the expected kind; the message quotes it and says what one looks like."""


def is_id(kind: IdKind, value: object) -> bool:
    """True when `value` is a string of exactly the shape of a `kind` id."""
    return isinstance(value, str) and kind.pattern.fullmatch(value) is not None


def is_customer_id(value: object) -> bool:
    return is_id(IdKind.CUSTOMER, value)


def is_subscription_id(value: object) -> bool:
    return is_id(IdKind.SUBSCRIPTION, value)


def is_invoice_id(value: object) -> bool:
    return is_id(IdKind.INVOICE, value)


def is_payment_method_id(value: object) -> bool:
    return is_id(IdKind.PAYMENT_METHOD, value)


def id_problem(kind: IdKind, value: object) -> str | None:
    """Why `value` is not a `kind` id, in a sentence a user can act on; None when it is one."""
    if is_id(kind, value):
        return None
    article = "an" if kind.label[0] in "aeiou" else "a"
    shapes = " or ".join(f"{p}_" for p in kind.prefixes)
    return (f"{value!r} is not {article} {kind.label} id: Stripe {kind.label} ids are {shapes} followed by "
            "letters and digits only. Check the id (copy it from the dashboard or Stripe) and try again.")


def require_id(kind: IdKind, value: object) -> str:
    """`value` when it is a `kind` id; else InvalidId with `id_problem`'s message."""
    problem = id_problem(kind, value)
    if problem:
        raise InvalidId(problem)
    return str(value)


def path_problem(path: str) -> str | None:
    """Why a Stripe API path (`/v1/customers/cus_1/tax_ids`) must not be requested; None when it is safe.

    Every segment must be a plain name or id (no `.`/`..`, `/`, `?`, `#`, `%`, spaces or control
    characters), and the segment after a collection of COLLECTION_KINDS must be an id of that kind.
    """
    segments = path.split("/")
    if segments[:2] != ["", "v1"] or len(segments) < 3:
        return f"{path!r} is not a Stripe API path (/v1/…)."
    rest = segments[2:]
    for i, segment in enumerate(rest):
        kind = COLLECTION_KINDS.get(rest[i - 1]) if i % 2 else None
        if kind is not None:
            problem = id_problem(kind, segment)
            if problem:
                return problem
        elif not SEGMENT.fullmatch(segment):
            return (f"{segment!r} cannot be part of a Stripe request (it has characters no Stripe id has). "
                    "Check the id and try again.")
    return None

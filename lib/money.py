"""Money, the one way: Stripe's minor units → major units in the currency's own decimals, as text for people
(Babel, one locale) and as a number for machines (CSV).

Stripe stores every amount as an integer of minor units; how many decimals a currency has is Stripe's rule
(`decimals`: JPY and the other zero-decimal currencies 0, KWD/BHD/JOD/OMR/TND 3, everything else 2), not
CLDR's (ISK or HUF differ), because the integer means what Stripe says. Babel only draws the number.

Hostile values are normal: a missing amount (None, NaN) is "" in text and None in a CSV; a missing or
malformed currency (None, '', NaN, 'us dollars') is treated as a two-decimal amount without a code, never
as dollars. Nothing here is ever summed across currencies.

Imports nothing from the rest of lib/ and no Streamlit (lib/queries, lib/portal, lib/merge and the pages use it).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from babel.numbers import format_decimal

LOCALE = "en_US"  # one number style for the whole dashboard: 1,234.50
ZERO_DECIMAL = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof",
    "xpf",
})
# Stripe counts these in thousandths (5.124 KWD is 5124); every other currency in hundredths
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
_CURRENCY_RE = re.compile(r"[a-z]{3}")


def currency_code(currency: object) -> str:
    """A currency as a lower-case ISO code ('usd'), or '' when it is missing or not a code at all.

    Safe for anything a row or a DataFrame cell holds: None, '', and the NaN pandas puts in a text column
    all mean "unknown" (so does text that is not three letters: it is never shown as a currency).
    """
    if not isinstance(currency, str):
        return ""
    code = currency.strip().lower()
    return code if _CURRENCY_RE.fullmatch(code) else ""


def missing(amount: object) -> bool:
    """True for an amount that is not there: None or NaN."""
    return amount is None or (isinstance(amount, float) and math.isnan(amount))


def decimals(currency: object) -> int:
    """How many decimals the currency's amounts have: 0 (JPY, KRW…), 3 (KWD, BHD…) or 2 (all others, and an
    unknown currency)."""
    code = currency_code(currency)
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def minor_to_major(amount: object, currency: object) -> float | None:
    """Minor units → major units in the currency's own decimals (zero-decimal JPY, three-decimal KWD), as a
    float for a numeric table column. A missing amount (None, NaN) stays None."""
    exact = major(amount, currency)
    return None if exact is None else float(exact)


def major(amount: object, currency: object) -> Decimal | None:
    """The exact amount in major units with exactly the currency's decimals: 1250 USD → Decimal('12.50'),
    1200 JPY → Decimal('1200'), 3500 KWD → Decimal('3.500'). What a CSV cell holds (written as those digits,
    never '7200.0'). A missing amount is None. PostgreSQL's SUM(bigint) (a Decimal) is accepted."""
    if missing(amount):
        return None
    return Decimal(int(amount)).scaleb(-decimals(currency))  # type: ignore[call-overload]


def number_pattern(currency: object) -> str:
    """The CLDR pattern of an amount in this currency: thousands separators and exactly its decimals."""
    places = decimals(currency)
    return "#,##0" + ("." + "0" * places if places else "")


def format_major(value: Decimal | float | int, currency: object) -> str:
    """An amount already in major units as '1,234.50 USD' (its currency's decimals, the ISO code after it);
    the number alone ('1,234.50') when the currency is unknown. Only digits, separators, a minus sign and a
    validated code appear, so the text is safe in Markdown."""
    code = currency_code(currency)
    text = format_decimal(value, format=number_pattern(code), locale=LOCALE, decimal_quantization=True)
    return f"{text} {code.upper()}" if code else text


def format_money(amount: object, currency: object) -> str:
    """Minor units as '1,234.50 USD' / '1,200 JPY' / '3.500 KWD': one currency per string, never a sum across
    currencies; '' for a missing amount; the number alone for an unknown currency."""
    value = major(amount, currency)
    return "" if value is None else format_major(value, currency)

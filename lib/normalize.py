"""Normal forms of emails, phones and names: the same function feeds the cache, search and duplicates."""

from __future__ import annotations

import unicodedata

import phonenumbers

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def normalize_email(email: str | None) -> str | None:
    """Case-folded and trimmed: how support types an address they read over the phone."""
    if not email:
        return None
    return email.strip().casefold() or None


def canonical_email(email: str | None) -> str | None:
    """The mailbox an address delivers to: plus-tag removed; gmail dots removed, googlemail → gmail."""
    norm = normalize_email(email)
    if not norm or "@" not in norm:
        return norm
    local, _, domain = norm.rpartition("@")
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}" if local else norm


def email_domain(email: str | None) -> str | None:
    """The company part of an address: what follows its last '@', case-folded, spaces and dots trimmed from
    its ends ('Ana@ACME.com.' → 'acme.com'); None when there is no '@' or nothing after it. The cache's indexed
    `customers.email_domain` (and migration 0005's SQL backfill, which mirrors this), and the search box's
    domain search all use it, so they agree."""
    norm = normalize_email(email)
    if not norm or "@" not in norm:
        return None
    return norm.rpartition("@")[2].strip(" .") or None


def normalize_phone(phone: str | None, region: str | None = "US") -> str | None:
    """E.164 when the number parses (a leading + or the default region), else None."""
    if not phone or not phone.strip():
        return None
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def fold_name(text: str | None) -> str | None:
    """Lower-cased with accents removed, so 'José' is found by 'jose'."""
    if not text:
        return None
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip() or None

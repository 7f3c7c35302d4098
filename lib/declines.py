"""Decline codes in plain language: what the bank said and what finance should do next.

Stripe reports a `decline_code` (from the issuer) or a `failure_code` (from Stripe) on a failed charge;
finance needs neither jargon, only "why" and "what now".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decline:
    code: str
    meaning: str
    next_step: str
    retry_helps: bool


_TABLE: dict[str, tuple[str, str, bool]] = {
    "insufficient_funds": (
        "The card has no money or credit left right now.",
        "Automatic retries often work after payday; remind the customer if the last retry fails.", True),
    "expired_card": (
        "The card on file has expired.",
        "Retries will not work: send a portal link so the customer adds a new card.", False),
    "card_declined": (
        "The bank declined without giving a reason.",
        "Let retries run; if they fail, ask the customer to call their bank or use another card.", True),
    "do_not_honor": (
        "The bank refused the payment without saying why.",
        "Ask the customer to contact their bank or switch cards; retries rarely help.", False),
    "incorrect_cvc": (
        "The security code did not match.",
        "Send a portal link so the customer re-enters the card.", False),
    "incorrect_number": (
        "The card number is wrong.",
        "Send a portal link so the customer enters a valid card.", False),
    "lost_card": (
        "The card was reported lost.",
        "Do not retry: ask the customer for a new card through the portal.", False),
    "stolen_card": (
        "The card was reported stolen.",
        "Do not retry: ask the customer for a new card through the portal.", False),
    "pickup_card": (
        "The bank wants the card taken out of use (possibly lost or stolen).",
        "Do not retry: ask the customer for another card.", False),
    "fraudulent": (
        "The bank or Stripe suspects fraud.",
        "Do not retry or contact through billing links; review the account first.", False),
    "processing_error": (
        "An error occurred while processing the card.",
        "Retries usually work; no action needed unless they keep failing.", True),
    "try_again_later": (
        "The bank asked to try again later.",
        "Automatic retries usually work; no action needed yet.", True),
    "authentication_required": (
        "The bank requires the customer to authenticate (3-D Secure).",
        "Send the hosted invoice link so the customer confirms the payment.", False),
    "card_velocity_exceeded": (
        "The customer hit their card's spending limit.",
        "Retries after a few days often work; otherwise ask for another card.", True),
    "card_not_supported": (
        "The card does not support this kind of purchase.",
        "Ask the customer for another card through the portal.", False),
    "currency_not_supported": (
        "The card cannot be charged in this currency.",
        "Ask the customer for another card through the portal.", False),
    "invalid_account": (
        "The card or its account is closed or invalid.",
        "Ask the customer for a new card through the portal.", False),
    "new_account_information_available": (
        "The card was replaced by the bank.",
        "Ask the customer to update their card through the portal.", False),
    "no_payment_method": (
        "The customer has no card on file.",
        "Send a portal link so the customer adds a payment method.", False),
}
# codes Stripe uses for the same situation: the same advice
_TABLE |= {"generic_decline": _TABLE["card_declined"],
           "withdrawal_count_limit_exceeded": _TABLE["card_velocity_exceeded"]}

UNKNOWN = ("The payment failed for a reason Stripe did not classify.",
           "Open the invoice in the Stripe Dashboard for details, then contact the customer.", False)


def explain(code: str | None) -> Decline:
    """Plain meaning and next step for a decline or failure code (unknown codes still get advice)."""
    key = (code or "").strip().lower()
    if not key:
        return Decline("(none)", "The payment failed but no reason was recorded.", UNKNOWN[1], False)
    meaning, step, retry = _TABLE.get(key, UNKNOWN)
    return Decline(key, meaning, step, retry)

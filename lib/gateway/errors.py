"""What a failed Stripe call raises: `GatewayError` and one subclass per way it can fail, caught by type.

    GatewayError                 (any failure; `user_message` is safe to show in the UI)
    ├── InvalidRequest           400: Stripe refused the request as it was (also an id refused before sending)
    ├── IdempotencyConflict      the same idempotency key was sent again with different content
    ├── NotFound                 404 `resource_missing`: the object does not exist (deleted, other mode)
    ├── CardDeclined             402: the bank refused a charge; `code` is the decline code
    ├── AuthFailed               401: the API key is wrong, revoked or for another account
    ├── PermissionDenied         403: a restricted key lacks a permission
    ├── RateLimited              429: too many requests (nothing was processed; the same request may be resent)
    └── Unavailable              Stripe did not answer usefully; nothing was changed, try again later
        ├── NetworkError         Stripe could not be reached (refused, DNS, timeout)
        └── ServerError          5xx, or an answer the SDK could not read

`kind` names each class as text (for logs and audit details); branch with `except`/`isinstance`.
The secret key never appears in a message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

import stripe


class ErrorKind(StrEnum):
    """Each GatewayError class's name as text (logs, audit details, the pages' error keys)."""

    FAILED = "failed"
    INVALID = "invalid"
    IDEMPOTENCY = "idempotency"
    MISSING = "missing"
    DECLINED = "declined"
    AUTH = "auth"
    PERMISSION = "permission"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    NETWORK = "network"
    SERVER = "server"


class GatewayError(Exception):
    """A Stripe call failed; `user_message` says what happened and what to do, and is safe to show."""

    kind: ClassVar[ErrorKind] = ErrorKind.FAILED

    def __init__(self, user_message: str, *, code: str | None = None, param: str | None = None,
                 status: int | None = None, request_id: str | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.code = code  # Stripe's error code (for CardDeclined: the decline code when there is one)
        self.param = param  # the request parameter Stripe named, if any
        self.status = status  # the HTTP status, when Stripe answered
        self.request_id = request_id  # Stripe's request id, for support tickets

    def __str__(self) -> str:
        return self.user_message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.user_message!r}, code={self.code!r}, status={self.status!r})"


class InvalidRequest(GatewayError):
    kind = ErrorKind.INVALID


class IdempotencyConflict(GatewayError):
    kind = ErrorKind.IDEMPOTENCY


class NotFound(GatewayError):
    kind = ErrorKind.MISSING


class CardDeclined(GatewayError):
    kind = ErrorKind.DECLINED


class AuthFailed(GatewayError):
    kind = ErrorKind.AUTH


class PermissionDenied(GatewayError):
    kind = ErrorKind.PERMISSION


class RateLimited(GatewayError):
    kind = ErrorKind.RATE_LIMITED


class Unavailable(GatewayError):
    kind = ErrorKind.UNAVAILABLE


class NetworkError(Unavailable):
    kind = ErrorKind.NETWORK


class ServerError(Unavailable):
    kind = ErrorKind.SERVER


def translate(exc: stripe.StripeError) -> GatewayError:
    """Turn an SDK exception into the GatewayError subclass for it, with a message a support engineer can act on."""
    status = getattr(exc, "http_status", None)
    code = getattr(exc, "code", None)
    err = getattr(exc, "error", None)
    param = getattr(err, "param", None) if err is not None else None
    request_id = getattr(exc, "request_id", None)
    message = getattr(err, "message", None) or getattr(exc, "user_message", None) or ""

    def make(cls: type[GatewayError], text: str, error_code: str | None = code) -> GatewayError:
        return cls(text, code=error_code, param=param, status=status, request_id=request_id)

    if isinstance(exc, stripe.RateLimitError) or status == 429:
        return make(RateLimited, "Stripe is rate-limiting this account right now. Wait a minute and try again.")
    if isinstance(exc, stripe.APIConnectionError):
        return make(NetworkError, "Stripe could not be reached (network error). Check the connection and try "
                                  "again; nothing was changed.")
    if isinstance(exc, stripe.AuthenticationError):
        return make(AuthFailed, "Stripe rejected the API key. Check STRIPE_API_KEY in the server's settings (it may "
                                "be revoked or for another account).")
    if isinstance(exc, stripe.PermissionError):
        where = f" ({message})" if message else "."
        return make(PermissionDenied, "The restricted API key lacks a permission this action needs. Add it in "
                                      "Stripe's Dashboard → Developers → API keys" + where)
    if isinstance(exc, stripe.CardError):
        decline = getattr(err, "decline_code", None) if err is not None else None
        return make(CardDeclined, message or "The card was declined.", decline or code)
    if isinstance(exc, stripe.IdempotencyError):
        return make(IdempotencyConflict, "Stripe refused a repeated request with different content: " + message)
    if isinstance(exc, stripe.InvalidRequestError):
        if code == "resource_missing":
            return make(NotFound, (message or "That object does not exist in Stripe.")
                        + " Refresh the cache for this customer; it may have been deleted.")
        return make(InvalidRequest, message or "Stripe refused the request as invalid.")
    if status is not None and status >= 500:
        return make(ServerError, "Stripe had an internal error. Try again in a minute; nothing was changed.")
    return make(ServerError, message or "Stripe returned an unexpected error. Try again later.")


def bad_id(message: str) -> InvalidRequest:
    """The error for an id that is not one: refused before any request, so nothing was asked or changed."""
    return InvalidRequest(message + " Nothing was sent to Stripe.")

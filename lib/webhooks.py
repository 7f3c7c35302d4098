"""POST /webhooks/stripe: verified on the raw body, applied once per event id, newer state wins."""

from __future__ import annotations

import json
import logging

import stripe
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lib.config import ConfigError, get_settings
from lib.gateway import GatewayError

log = logging.getLogger(__name__)
MAX_BODY = 1_000_000  # Stripe's payloads are far smaller; refuse anything bigger before parsing
TOO_LARGE = (f"payload too large: the body passes the {MAX_BODY:,}-byte limit (a Stripe event is far smaller), "
             "so it was refused without reading the rest")


def declared_length(request: Request) -> int | None:
    """The request's Content-Length as a number, or None when it is absent or not a whole number (the body
    is then still read under the running limit of `read_bounded`)."""
    raw = request.headers.get("content-length", "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() else None


async def read_bounded(request: Request, limit: int = MAX_BODY) -> bytes | None:
    """The raw body, or None as soon as it passes `limit` bytes.

    A declared Content-Length over the limit is refused before reading anything; a chunked (or undeclared)
    body is read piece by piece with a running count, so no more than `limit` bytes (plus the piece that
    crossed it) is ever held, whatever the sender streams.
    """
    declared = declared_length(request)
    if declared is not None and declared > limit:
        return None
    pieces: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            return None
        pieces.append(piece)
    return b"".join(pieces)


def too_large() -> JSONResponse:
    """413, closing the connection: the server stops reading the rest of an oversized body."""
    return JSONResponse({"error": TOO_LARGE}, status_code=413, headers={"Connection": "close"})


async def stripe_webhook(request: Request) -> JSONResponse:
    """Verify `Stripe-Signature` against STRIPE_WEBHOOK_SECRET on the raw bytes, then apply the event.

    400 and nothing written on a bad or missing signature; 413 for a body over MAX_BODY (refused from its
    Content-Length, or as soon as a chunked body passes it, holding no more than that); 200 for an applied,
    duplicate or ignored event (so Stripe stops retrying); 503 when the secret is not configured or the cache
    cannot be written (Stripe retries later, and the event will also come through the Events API).
    """
    try:
        settings = get_settings()
    except ConfigError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    secret = settings.stripe_webhook_secret
    if not secret:
        return JSONResponse({"error": "STRIPE_WEBHOOK_SECRET is not set on the server: copy the endpoint's "
                             "signing secret (whsec_…) from Stripe into the server's settings."}, status_code=503)
    payload = await read_bounded(request)
    if payload is None:
        return too_large()
    signature = request.headers.get("stripe-signature", "")
    try:
        # Verify only: construct_event would also build an SDK Event from a second parse we never use.
        stripe.WebhookSignature.verify_header(payload, signature, secret, stripe.Webhook.DEFAULT_TOLERANCE)
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError):
        return JSONResponse({"error": "invalid Stripe-Signature"}, status_code=400)
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        return JSONResponse({"error": "not a Stripe event"}, status_code=400)

    from lib.sync import apply_webhook_event  # the sync engine loads only when a delivery arrives

    try:
        outcome = await run_in_threadpool(apply_webhook_event, event, settings=settings)
    except GatewayError as exc:  # completing a nested list needed Stripe and it failed: let Stripe retry
        log.warning("webhook %s not applied: %s", event["id"], exc.user_message)
        return JSONResponse({"error": exc.user_message}, status_code=503)
    except (SQLAlchemyError, ConfigError) as exc:  # the cache is down or misconfigured: Stripe retries later
        log.warning("webhook %s not applied: cache database error %s", event["id"], type(exc).__name__)
        return JSONResponse({"error": cache_unavailable(exc)}, status_code=503)
    except Exception as exc:  # noqa: BLE001 — answer 500 without a traceback; Stripe retries the delivery
        log.exception("webhook %s not applied", event["id"])
        return JSONResponse({"error": f"the cache could not be written ({type(exc).__name__})"}, status_code=500)
    return JSONResponse({"received": True, "id": event["id"], "result": outcome})


def cache_unavailable(exc: Exception) -> str:
    """What a 503 says when the cache cannot be written: the cause by name, never driver text or a traceback."""
    if isinstance(exc, ConfigError):
        return f"the cache database is misconfigured: {exc}"
    return (f"the cache database could not be written ({type(exc).__name__}): check DATABASE_URL and that the "
            "database is running; Stripe retries the delivery, and the Events API sync catches up too")


def routes() -> list[Route]:
    return [Route("/webhooks/stripe", stripe_webhook, methods=["POST"])]

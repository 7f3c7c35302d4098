"""POST /webhooks/stripe: verified on the raw body, applied once per event id, newer state wins."""

from __future__ import annotations

import json
import logging

import stripe
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lib.config import ConfigError, get_settings
from lib.stripe_gateway import GatewayError

log = logging.getLogger(__name__)
MAX_BODY = 1_000_000  # Stripe's payloads are far smaller; refuse anything bigger before parsing


async def stripe_webhook(request: Request) -> JSONResponse:
    """Verify `Stripe-Signature` against STRIPE_WEBHOOK_SECRET on the raw bytes, then apply the event.

    400 and nothing written on a bad or missing signature; 200 for an applied, duplicate or ignored event
    (so Stripe stops retrying); 503 when the secret is not configured or the cache cannot be written (Stripe
    retries later, and the event will also come through the Events API).
    """
    try:
        settings = get_settings()
    except ConfigError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    secret = settings.stripe_webhook_secret
    if not secret:
        return JSONResponse({"error": "STRIPE_WEBHOOK_SECRET is not set on the server: copy the endpoint's "
                             "signing secret (whsec_…) from Stripe into the server's settings."}, status_code=503)
    payload = await request.body()
    if len(payload) > MAX_BODY:
        return JSONResponse({"error": "payload too large"}, status_code=413)
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
    except Exception as exc:  # noqa: BLE001 — answer 500 without a traceback; Stripe retries the delivery
        log.exception("webhook %s not applied", event["id"])
        return JSONResponse({"error": f"the cache could not be written ({type(exc).__name__})"}, status_code=500)
    return JSONResponse({"received": True, "id": event["id"], "result": outcome})


def routes() -> list[Route]:
    return [Route("/webhooks/stripe", stripe_webhook, methods=["POST"])]

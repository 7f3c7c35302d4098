"""Stripe's Prices resource: one price as it is now, with its product."""

from __future__ import annotations

from typing import Any

from lib.config import Settings
from lib.gateway.reads import retrieve as read_path


def retrieve_with_product(price_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """The price now (`active` may have changed since a subscription embedded it), its product expanded."""
    obj, _ = read_path(f"/v1/prices/{price_id}", {"expand": ["product"]}, settings=settings)
    return obj

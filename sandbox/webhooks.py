"""Webhook endpoints and signed, retried deliveries (Stripe-Signature: t=…,v1=HMAC-SHA256)."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import itertools
import json
import os
import secrets
import time
from collections import deque
from typing import Any

import httpx

from sandbox.core import Obj, Store, copy_fields, invalid, list_page, metadata_update, new_id
from sandbox.resources import type_matcher
from sandbox.routes import route
from sandbox.shape import render_event

KIND = "webhook_endpoint"


def sign(payload: str, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@route("POST", "/v1/webhook_endpoints", {"url", "enabled_events", "description", "metadata", "api_version",
                                         "connect", "disabled"})
def endpoint_create(store: Store, params: Obj) -> Obj:
    url = params.get("url")
    if not url:
        raise invalid("Missing required param: url.", param="url", code="parameter_missing")
    if not str(url).startswith(("http://", "https://")):
        raise invalid("Invalid URL: must start with http:// or https://", param="url", code="url_invalid")
    events = params.get("enabled_events")
    if not isinstance(events, list) or not events:
        raise invalid("Missing required param: enabled_events.", param="enabled_events", code="parameter_missing")
    secret = os.environ.get("SANDBOX_WEBHOOK_SECRET") or "whsec_" + secrets.token_hex(16)
    ep = {"id": new_id("we"), "object": KIND, "api_version": params.get("api_version"), "application": None,
          "created": store.now(), "description": params.get("description") or None, "enabled_events": list(events),
          "livemode": False, "metadata": metadata_update({}, params.get("metadata")), "secret": secret,
          "status": "enabled", "url": url, "_secret": secret}
    store.put(ep)
    return ep


@route("GET", "/v1/webhook_endpoints", {"limit", "starting_after", "ending_before"})
def endpoint_list(store: Store, params: Obj) -> Obj:
    idx = store.index.get(KIND)
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/webhook_endpoints"}
    page = list_page(store, idx.ids, params, "/v1/webhook_endpoints", pos=idx.pos)
    page["data"] = [{k: v for k, v in ep.items() if k != "secret"} for ep in page["data"]]
    return page


@route("GET", "/v1/webhook_endpoints/{wid}", set())
def endpoint_retrieve(store: Store, params: Obj, wid: str) -> Obj:
    ep = store.get(wid, KIND, "webhook endpoint")
    return {k: v for k, v in ep.items() if k != "secret"}


@route("POST", "/v1/webhook_endpoints/{wid}", {"url", "enabled_events", "description", "metadata", "disabled"})
def endpoint_update(store: Store, params: Obj, wid: str) -> Obj:
    from sandbox.core import as_bool

    ep = store.get(wid, KIND, "webhook endpoint")
    if params.get("url"):
        ep["url"] = params["url"]
    if isinstance(params.get("enabled_events"), list):
        ep["enabled_events"] = list(params["enabled_events"])
    copy_fields(ep, params, ("description",))
    if "metadata" in params:
        ep["metadata"] = metadata_update(ep["metadata"], params["metadata"])
    if "disabled" in params:
        ep["status"] = "disabled" if as_bool(params, "disabled") else "enabled"
    return {k: v for k, v in ep.items() if k != "secret"}


@route("DELETE", "/v1/webhook_endpoints/{wid}", set())
def endpoint_delete(store: Store, params: Obj, wid: str) -> Obj:
    ep = store.get(wid, KIND, "webhook endpoint")
    ep["_deleted"] = True
    return {"id": wid, "object": KIND, "deleted": True}


class Deliverer:
    """Queues every event for the matching endpoints and POSTs it, retrying failures with backoff."""

    def __init__(self) -> None:
        self.store: Store | None = None
        self.heap: list[tuple[float, int, str, str, str, str, int]] = []
        self.counter = itertools.count()
        self.log: deque[Obj] = deque(maxlen=2000)
        self.wake = asyncio.Event()
        self.client: httpx.AsyncClient | None = None
        self.inflight = 0

    def bind(self, store: Store) -> None:
        self.store = store
        self.heap.clear()
        self.log.clear()
        store.event_hooks = [self.on_event]

    def on_event(self, event: Obj) -> None:
        store = self.store
        assert store is not None
        idx = store.index.get(KIND)
        if idx is None:
            return
        payload = None
        for wid in idx.ids:
            ep = store.objs.get(wid)
            if ep is None or ep.get("_deleted") or ep["status"] != "enabled":
                continue
            if "*" not in ep["enabled_events"] and not type_matcher(ep["enabled_events"])(event["type"]):
                continue
            if payload is None:
                payload = json.dumps(render_event(event), separators=(",", ":"))
            event["pending_webhooks"] += 1
            heapq.heappush(self.heap, (time.monotonic(), next(self.counter), wid, event["id"], event["type"],
                                       payload, 1))
        if payload is not None:
            self.wake.set()

    async def run(self) -> None:
        self.client = httpx.AsyncClient(timeout=10)
        try:
            while True:
                if not self.heap:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                delay = self.heap[0][0] - time.monotonic()
                if delay > 0:
                    self.wake.clear()
                    try:
                        await asyncio.wait_for(self.wake.wait(), timeout=delay)
                    except TimeoutError:
                        pass
                    continue
                if self.inflight >= 8:
                    await asyncio.sleep(0.005)
                    continue
                item = heapq.heappop(self.heap)
                self.inflight += 1
                asyncio.get_running_loop().create_task(self._deliver(item))
        finally:
            await self.client.aclose()

    async def _deliver(self, item: tuple[float, int, str, str, str, str, int]) -> None:
        _, _, wid, eid, etype, payload, attempt = item
        store = self.store
        try:
            ep = store.objs.get(wid) if store else None
            if ep is None or ep.get("_deleted"):
                return
            ts = int(time.time())
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "Stripe-Signature": sign(payload, ep["_secret"], ts), "User-Agent": "Stripe/1.0 (sandbox)"}
            status: int | None = None
            error = None
            try:
                assert self.client is not None
                resp = await self.client.post(ep["url"], content=payload.encode(), headers=headers)
                status = resp.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            ok = status is not None and 200 <= status < 300
            delays = store.settings["webhook_retry_seconds"] if store else []
            final = ok or attempt > len(delays)
            self.log.append({"event": eid, "type": etype, "endpoint": wid, "url": ep["url"], "attempt": attempt,
                             "status": status, "error": error, "ok": ok, "time": time.time()})
            if final:
                ev = store.objs.get(eid) if store else None
                if ev is not None and ev["pending_webhooks"] > 0:
                    ev["pending_webhooks"] -= 1
            else:
                heapq.heappush(self.heap, (time.monotonic() + delays[attempt - 1], next(self.counter), wid, eid,
                                           etype, payload, attempt + 1))
                self.wake.set()
        finally:
            self.inflight -= 1

    def snapshot(self) -> Any:
        return list(self.log)

"""Webhook endpoints: signed deliveries that stripe.Webhook.construct_event accepts, retried on failure."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import stripe

from tests.utils.net import free_port
from tests.utils.sandbox import SandboxServer
from tests.utils.wait import wait_until


class Receiver:
    """A local HTTP receiver that fails the first `fail` deliveries, then answers 200."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.got: list[tuple[bytes, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append((body, self.headers.get("Stripe-Signature", "")))
                code = 500 if receiver.fail > 0 else 200
                receiver.fail -= 1
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=2)
    yield r
    r.close()


def test_signed_delivery_with_retries(sandbox: SandboxServer, receiver: Receiver) -> None:
    c = sandbox.client
    sandbox.settings(webhook_retry_seconds=[0.2, 0.4, 0.8])
    ep = c.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["customer.created"]})
    assert ep.secret.startswith("whsec_")
    assert ep.status == "enabled"
    cus = c.v1.customers.create(params={"email": "hook@example.com"})
    c.v1.products.create(params={"name": "not subscribed to"})
    wait_until(lambda: len(receiver.got) >= 3, what="three delivery attempts")
    body, sig = receiver.got[-1]
    event = stripe.Webhook.construct_event(body.decode(), sig, ep.secret)
    assert event.type == "customer.created"
    assert event.data.object.id == cus.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), sig, "whsec_wrong")
    attempts = [(d["attempt"], d["status"]) for d in sandbox.webhook_deliveries() if d["endpoint"] == ep.id]
    assert attempts == [(1, 500), (2, 500), (3, 200)]
    wait_until(lambda: c.v1.events.retrieve(event.id).pending_webhooks == 0, what="customer.created delivered")
    # product.created was not subscribed to: no delivery was queued for it (the sandbox queues deliveries
    # when the event is created, so this needs no wait)
    (product_event,) = c.v1.events.list(params={"type": "product.created"}).data
    assert product_event.pending_webhooks == 0
    assert {d["type"] for d in sandbox.webhook_deliveries() if d["endpoint"] == ep.id} == {"customer.created"}
    assert len(receiver.got) == 3


def test_endpoint_list_and_delete(sandbox: SandboxServer) -> None:
    c = sandbox.client
    ep = c.v1.webhook_endpoints.create(params={"url": "https://example.com/hook", "enabled_events": ["*"],
                                               "description": "dashboard"})
    listed = c.v1.webhook_endpoints.list().data
    assert [e.id for e in listed] == [ep.id]
    assert "secret" not in listed[0]
    assert c.v1.webhook_endpoints.delete(ep.id).deleted is True
    assert c.v1.webhook_endpoints.list().data == []
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.webhook_endpoints.create(params={"url": "ftp://x", "enabled_events": ["*"]})


def test_secret_comes_from_the_environment(tmp_path: Path) -> None:
    server = SandboxServer.start(env={"SANDBOX_WEBHOOK_SECRET": "whsec_from_env"})
    try:
        ep = server.client.v1.webhook_endpoints.create(params={"url": "https://example.com/h",
                                                              "enabled_events": ["*"]})
        assert ep.secret == "whsec_from_env"
    finally:
        server.stop()

"""Webhooks through the real server process (`streamlit run server.py`): signed, once per event, newest wins."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

from sqlalchemy import Engine, text

from tests.utils.browser import dashboard
from tests.utils.sandbox import SandboxServer

SECRET = "whsec_test_secret"  # tests/conftest.py puts it in STRIPE_WEBHOOK_SECRET


def signed(payload: bytes, secret: str = SECRET, *, age: int = 0) -> str:
    t = int(time.time()) - age
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def post(url: str, payload: bytes, signature: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Stripe-Signature": signature} if signature else {})}
    req = urllib.request.Request(url + "/webhooks/stripe", data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def rows(engine: Engine, sql: str, **params: object) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def test_webhooks_verify_dedupe_and_keep_the_newest_state(db: Engine, sandbox: SandboxServer, db_url: str) -> None:
    client = sandbox.client
    customer = client.v1.customers.create({"name": "Version 1", "email": "hook@example.com"})
    client.v1.customers.update(customer.id, {"name": "Version 2"})
    client.v1.customers.update(customer.id, {"name": "Version 3", "metadata": {"plan": "gold"}})
    sandbox.advance(seconds=5)
    client.v1.customers.update(customer.id, {"name": "Version 4"})
    events = list(reversed(client.v1.events.list({"type": "customer.*", "limit": 10}).data))  # oldest first
    assert [e.type for e in events] == ["customer.created"] + ["customer.updated"] * 3
    bodies = [json.dumps(e.to_dict()).encode() for e in events]

    with dashboard({"DATABASE_URL": db_url, "STRIPE_WEBHOOK_SECRET": SECRET}) as url:
        # Bad signatures: 400, nothing written.
        assert post(url, bodies[-1], signed(bodies[-1], "whsec_wrong"))[0] == 400
        assert post(url, bodies[-1], None)[0] == 400
        tampered = bodies[-1].replace(b"Version 4", b"Hacked 4")
        assert post(url, tampered, signed(bodies[-1]))[0] == 400
        assert post(url, bodies[-1], signed(bodies[-1], age=600))[0] == 400  # a replayed old delivery
        assert rows(db, "SELECT id FROM customers") == []
        assert rows(db, "SELECT id FROM stripe_events") == []

        # Newest first, then duplicates and the older ones in a shuffled order.
        outcomes = []
        for i in (3, 3, 1, 0, 2, 1):
            status, body = post(url, bodies[i], signed(bodies[i]))
            assert status == 200, body
            outcomes.append(body["result"])
        assert outcomes == ["applied", "duplicate", "applied", "applied", "applied", "duplicate"]
        assert rows(db, "SELECT name, email_normalized FROM customers") == [("Version 4", "hook@example.com")]
        assert rows(db, "SELECT COUNT(*) FROM stripe_events WHERE source = 'webhook'") == [(4,)]

        # A deletion arrives before the update that preceded it: the late update does not revive the customer.
        client.v1.customers.update(customer.id, {"name": "Version 5"})
        client.v1.customers.delete(customer.id)
        late, deleted = reversed(client.v1.events.list({"type": "customer.*", "limit": 2}).data)
        assert (late.type, deleted.type) == ("customer.updated", "customer.deleted")
        for event in (deleted, late, deleted):
            body = json.dumps(event.to_dict()).encode()
            assert post(url, body, signed(body))[0] == 200
        assert rows(db, "SELECT deleted FROM customers") in ([(True,)], [(1,)])
        assert rows(db, "SELECT COUNT(*) FROM stripe_events") == [(6,)]

"""`python -m lib worker` as a real process against the sandbox: fresh cache within interval + a few seconds,
clean exit on SIGTERM, one active worker per database (a second one waits), health and Prometheus metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from sandbox.process import free_port
from tests.utils.sandbox import SandboxServer
from tests.utils.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 1.0


@contextmanager
def worker() -> Iterator[tuple[subprocess.Popen, str]]:
    """A worker process (interval 1 s) on the test's database and sandbox; killed if still running after."""
    port = free_port()
    env = {**os.environ, "WORKER_INTERVAL_SECONDS": str(INTERVAL), "WORKER_METRICS_PORT": str(port),
           "STRIPE_REQUESTS_PER_SECOND": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "lib", "worker"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def health(base: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
    except OSError:
        return {}


def synced(base: str) -> bool:
    return health(base).get("last_success") is not None


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def test_a_change_in_stripe_reaches_the_cache_within_the_interval_and_sigterm_exits_cleanly(
        db: Engine, sandbox: SandboxServer) -> None:
    with worker() as (proc, base):
        wait_until(lambda: synced(base), timeout=60, what="a first successful run")
        cid = sandbox.client.v1.customers.create({"email": "fresh@example.com", "name": "Fresh"}).id

        def cached() -> bool:
            with db.connect() as conn:
                return conn.execute(text("SELECT COUNT(*) FROM customers WHERE id = :c"), {"c": cid}).scalar() == 1

        wait_until(cached, timeout=INTERVAL + 5, what="the new customer in the cache")
        code, out = stop(proc)
    assert code == 0, out
    assert "Traceback" not in out
    with db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM sync_lock")).scalar() == 0  # both locks released


def test_a_second_worker_waits_for_the_lock_and_takes_over_when_the_first_stops(
        db: Engine, sandbox: SandboxServer) -> None:
    with worker() as (first, first_base):
        wait_until(lambda: synced(first_base), timeout=60, what="a first successful run")
        with worker() as (second, second_base):
            wait_until(lambda: health(second_base).get("state") == "waiting", timeout=30,
                       what="the second worker waiting for the lock")
            assert second.poll() is None  # waiting, not failed
            assert not synced(second_base)
            code, _ = stop(first)
            assert code == 0
            wait_until(lambda: synced(second_base), timeout=30, what="a run by the second worker")
            code, out = stop(second)
    assert code == 0, out
    assert "waiting for the worker lock" in out


def test_metrics_endpoint_answers_with_the_named_metrics(db: Engine, sandbox: SandboxServer) -> None:
    sandbox.client.v1.customers.create({"email": "m@example.com"})
    with worker() as (proc, base):
        try:
            wait_until(lambda: synced(base), timeout=60, what="a successful run")
        except AssertionError as missed:
            raise AssertionError(f"no successful run: {health(base)} {stop(proc)}") from missed
        with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
            body = resp.read().decode()
        stop(proc)
    for name in ("billing_sync_last_success_timestamp_seconds", "billing_sync_lag_seconds",
                 "billing_sync_objects_total", "billing_sync_stripe_requests_total",
                 "billing_sync_stripe_rate_limited_total", "billing_sync_errors_total"):
        assert f"\n{name}" in body, name
    assert 'billing_sync_objects_total{resource="customers"}' in body
    assert 'billing_sync_stripe_requests_total{resource="customers"}' in body

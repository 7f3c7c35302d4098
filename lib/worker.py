"""The always-on sync worker: `python -m lib worker`.

Runs the incremental sync (events since each resource's cursor; the backfill, pass 2 included, where one is
missing or unfinished) every `WORKER_INTERVAL_SECONDS` (default 60). Contract:

- one active worker per database: it holds the `worker` lock for its lifetime; a second worker on the same
  database waits for that lock (state `waiting` on /health) and takes over when the first stops or dies.
  Each run also takes the one-sync lock; when a manual `python -m lib sync` holds it, the worker waits
  for it (a `skipped` run is retried after a few seconds, not counted as a failure);
- a failed run is retried after a backoff that doubles per consecutive failure (interval × 2ⁿ, at most
  15 minutes, jittered); a success returns to the interval;
- SIGTERM or SIGINT stops it cleanly: a run in progress stops before its next page (pages are committed with
  their cursors, so the next run resumes), the locks are released, exit code 0;
- `GET /health` (JSON: state, last success, lag, consecutive failures; 200 while healthy or waiting, 503
  after failures past the interval) and `GET /metrics` (Prometheus text) on `WORKER_METRICS_HOST:PORT`
  (127.0.0.1:9464 by default; port 0 = no endpoint).
"""

from __future__ import annotations

import json
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from lib import gateway as gw
from lib.config import Settings, get_settings

MAX_BACKOFF_SECONDS = 900.0
LOCK_POLL_SECONDS = 2.0

State = Literal["starting", "waiting", "idle", "syncing", "backing_off", "stopping"]


@dataclass
class Metrics:
    """The worker's Prometheus metrics, in a registry of their own (plus the process's CPU and memory)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        ProcessCollector(registry=r)
        self.last_success = Gauge("billing_sync_last_success_timestamp_seconds",
                                  "Unix time the last successful sync run finished", registry=r)
        self.lag = Gauge("billing_sync_lag_seconds",
                         "Seconds since the start of the last successful sync run: how old the cache may be",
                         registry=r)
        self.objects = Counter("billing_sync_objects", "Objects written to the cache by the worker's runs",
                               ["resource"], registry=r)
        self.requests = Counter("billing_sync_stripe_requests", "Stripe API calls made by the worker, by resource",
                                ["resource"], registry=r)
        self.rate_limited = Counter("billing_sync_stripe_rate_limited",
                                    "Stripe answers 429 (rate limited) met by the worker", registry=r)
        self.errors = Counter("billing_sync_errors", "Sync runs that failed", registry=r)
        self.runs = Counter("billing_sync_runs", "Sync runs by outcome", ["status"], registry=r)
        self.active = Gauge("billing_sync_worker_active",
                            "1 when this worker holds the worker lock, 0 while it waits for it", registry=r)
        self.lag.set_function(self._lag)
        self._success_started: float | None = None
        self._stats = gw.request_stats()

    def _lag(self) -> float:
        return time.time() - self._success_started if self._success_started is not None else float("nan")

    def record(self, status: str, counts: dict[str, int], started: float) -> None:
        """After a run: its outcome, the objects it wrote, and the Stripe calls made since the last record."""
        self.runs.labels(status=status).inc()
        if status == "succeeded":
            self._success_started = started
            self.last_success.set(time.time())
        elif status == "failed":
            self.errors.inc()
        for resource, n in counts.items():
            if n:
                self.objects.labels(resource=resource).inc(n)
        now = gw.request_stats()
        for key, value in now.items():
            delta = value - self._stats.get(key, 0)
            if delta <= 0:
                continue
            if key.startswith("requests:"):
                self.requests.labels(resource=key.split(":", 1)[1]).inc(delta)
            elif key == "rate_limited":
                self.rate_limited.inc(delta)
        self._stats = now


class Worker:
    """One worker process's loop; `stop` ends it (the signal handlers set it)."""

    def __init__(self, settings: Settings | None = None, *, log: Callable[[str], None] | None = None) -> None:
        self.settings = settings or get_settings()
        self.stop = threading.Event()
        self.metrics = Metrics()
        self.state: State = "starting"
        self.failures = 0
        self.last_error: str | None = None
        self.last_success: float | None = None
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._server: ThreadingHTTPServer | None = None

    # --- health --------------------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): 503 once runs have failed for longer than the interval, else 200."""
        now = time.time()
        unhealthy = self.failures > 0 and (self.last_success is None or
                                           now - self.last_success > 2 * self.settings.worker_interval_seconds)
        body = {"state": self.state, "healthy": not unhealthy, "consecutive_failures": self.failures,
                "last_success": self.last_success, "interval_seconds": self.settings.worker_interval_seconds,
                "lag_seconds": None if self.metrics._success_started is None
                else round(now - self.metrics._success_started, 1),
                "last_error": self.last_error}
        return (503 if unhealthy else 200), body

    def serve(self) -> int | None:
        """Start /health and /metrics on the configured address; the port it listens on (None when off)."""
        if not self.settings.worker_metrics_port:
            return None
        worker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 — http.server's name
                if self.path.split("?")[0] == "/metrics":
                    status, body, kind = 200, generate_latest(worker.metrics.registry), CONTENT_TYPE_LATEST
                elif self.path.split("?")[0] in ("/health", "/"):
                    status, data = worker.health()
                    body, kind = json.dumps(data).encode(), "application/json"
                else:
                    status, body, kind = 404, b"not found: use /health or /metrics\n", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # no access log
                return

        self._server = ThreadingHTTPServer((self.settings.worker_metrics_host, self.settings.worker_metrics_port),
                                           Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="worker-metrics", daemon=True).start()
        return self._server.server_address[1]

    # --- the loop ------------------------------------------------------------------------------
    def backoff(self) -> float:
        """Seconds before the next run: the interval after a success, doubling per consecutive failure."""
        interval = self.settings.worker_interval_seconds
        if not self.failures:
            return interval
        return min(MAX_BACKOFF_SECONDS, interval * 2 ** (self.failures - 1)) * random.uniform(0.8, 1.0)

    def run(self) -> int:
        """Until `stop`: wait for the worker lock, then sync every interval. Returns the exit code."""
        from lib.db import ensure_migrated
        from lib.sync import run_sync
        from lib.sync.lock import WORKER_LOCK_NAME, LockHeld, heartbeat, holder_name, sync_lock

        engine = ensure_migrated(self.settings.database_url)
        holder = holder_name()
        told = False
        try:
            while not self.stop.is_set():
                try:
                    with sync_lock(engine, holder, name=WORKER_LOCK_NAME):
                        self.metrics.active.set(1)
                        self.log(f"worker: active ({holder}); incremental sync every "
                                 f"{self.settings.worker_interval_seconds:g} s")
                        self._loop(engine, holder, run_sync, lambda: heartbeat(engine, holder, WORKER_LOCK_NAME))
                    return 0
                except LockHeld as exc:
                    self.state = "waiting"
                    self.metrics.active.set(0)
                    if not told:
                        self.log(f"worker: waiting for the worker lock: {exc}")
                        told = True
                    self.stop.wait(LOCK_POLL_SECONDS)
            return 0
        finally:
            self.state = "stopping"
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
            engine.dispose()

    def _loop(self, engine: Any, holder: str, run_sync: Callable[..., Any], beat: Callable[[], None]) -> None:
        while not self.stop.is_set():
            self.state = "syncing"
            started = time.time()
            try:
                result = run_sync(mode="incremental", settings=self.settings, cancel=self.stop)
                status, counts, error = result.status, result.counts, result.error
            except Exception as exc:  # noqa: BLE001 — e.g. the database went away: back off, say why
                status, counts, error = "failed", {}, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            if self.stop.is_set():
                return
            self.metrics.record(status, counts, started)
            if status == "succeeded":
                self.failures, self.last_error, self.last_success = 0, None, time.time()
                delay = self.backoff()
                self.state = "idle"
            elif status == "skipped":  # a manual sync holds the sync lock: wait for it
                self.log(f"worker: {error}; trying again in {LOCK_POLL_SECONDS:g} s")
                delay = LOCK_POLL_SECONDS
                self.state = "waiting"
            else:
                self.failures += 1
                self.last_error = error
                delay = self.backoff()
                self.state = "backing_off"
                self.log(f"worker: sync failed ({self.failures} in a row): {error}; next try in {delay:.0f} s")
            beat()
            self.stop.wait(delay)


def main(settings: Settings | None = None) -> int:
    """`python -m lib worker`: run until SIGTERM/SIGINT; exit 0 on a clean stop."""
    worker = Worker(settings)

    def on_signal(signum: int, _frame: Any) -> None:
        worker.log(f"worker: {signal.Signals(signum).name} received, stopping")
        worker.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        port = worker.serve()
    except OSError as exc:
        worker.log(f"error: the worker's metrics endpoint could not listen on "
                   f"{worker.settings.worker_metrics_host}:{worker.settings.worker_metrics_port} ({exc.strerror}): "
                   "set WORKER_METRICS_PORT to a free port, or 0 for none")
        return 1
    if port:
        worker.log(f"worker: health and metrics on http://{worker.settings.worker_metrics_host}:{port}/")
    code = worker.run()
    worker.log("worker: stopped")
    return code

"""The request budget every Stripe call spends from: an adaptive token bucket, low-priority threads, counters."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lib.config import Settings, get_settings

ADAPT_CUT = 0.85  # on a 429 the budget drops to this share of itself (at most once per ADAPT_COOLDOWN s)
ADAPT_COOLDOWN = 1.0
ADAPT_FLOOR = 0.8  # never below this share of the configured budget
ADAPT_QUIET = 3.0  # seconds without a 429 before the budget climbs back
ADAPT_CLIMB = 0.1  # share of the configured budget regained per quiet second

_priority = threading.local()


@contextmanager
def low_priority() -> Iterator[None]:
    """Requests made by this thread inside the block wait while any normal request waits for the budget
    (the sync's pass 2 — every customer's card list — runs in whatever pass 1 leaves)."""
    before = getattr(_priority, "low", False)
    _priority.low = True
    try:
        yield
    finally:
        _priority.low = before


class TokenBucket:
    """A thread-safe token bucket: `acquire()` blocks until a request may go out within the budget.

    The budget adapts: `throttled()` (Stripe answered 429) cuts the rate to `ADAPT_CUT` of itself, at most
    once a second and never below `ADAPT_FLOOR` of the configured rate; after `ADAPT_QUIET` seconds without a
    429 it climbs back by `ADAPT_CLIMB` of the configured rate per second. Low-priority acquirers
    (`low_priority`) wait while a normal one is waiting."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.ceiling = float(rate)
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._normal_waiting = 0
        self._last_429 = -1e9
        self._last_cut = -1e9

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if self.rate < self.ceiling:
            quiet = now - max(self._last_429 + ADAPT_QUIET, self._last)
            if quiet > 0:
                self.rate = min(self.ceiling, self.rate + self.ceiling * ADAPT_CLIMB * quiet)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._last = now

    def acquire(self) -> None:
        low = getattr(_priority, "low", False)
        if not low:
            with self._lock:
                self._normal_waiting += 1
        try:
            while True:
                with self._lock:
                    self._refill(time.monotonic())
                    if self._tokens >= 1.0 and (not low or self._normal_waiting == 0):
                        self._tokens -= 1.0
                        return
                    wait = max(0.002, (1.0 - self._tokens) / self.rate)
                time.sleep(wait)
        finally:
            if not low:
                with self._lock:
                    self._normal_waiting -= 1

    def throttled(self) -> None:
        """Stripe answered 429: spend less for a while."""
        with self._lock:
            now = time.monotonic()
            self._refill(now)
            self._last_429 = now
            if now - self._last_cut >= ADAPT_COOLDOWN:
                self.rate = max(self.ceiling * ADAPT_FLOOR, self.rate * ADAPT_CUT)
                self._last_cut = now


_buckets: dict[float, TokenBucket] = {}
_lock = threading.Lock()
_requests_sent = 0
_stats: dict[str, int] = {}  # "requests:<resource>", "rate_limited", "errors" (see `request_stats`)


def budget(settings: Settings | None = None) -> TokenBucket:
    """The process-wide bucket for the configured budget (STRIPE_REQUESTS_PER_SECOND, else 20 test / 80 live)."""
    rate = (settings or get_settings()).request_budget
    with _lock:
        if rate not in _buckets:
            _buckets[rate] = TokenBucket(rate)
        return _buckets[rate]


def request_stats() -> dict[str, int]:
    """Counters since the process started (callers take differences): `requests:<resource>` per list or
    object path (`requests:customers`, `requests:payment_intents`, …), `rate_limited` (429s answered) and
    `errors` (calls that failed for good)."""
    with _lock:
        return dict(_stats)


def count(key: str) -> None:
    """Add one to the counter `key` (see `request_stats`)."""
    with _lock:
        _stats[key] = _stats.get(key, 0) + 1


def count_sent() -> None:
    """One more request went out (retries included)."""
    global _requests_sent
    with _lock:
        _requests_sent += 1


def requests_sent() -> int:
    """Requests sent to Stripe by this process so far (retries included): callers take differences."""
    return _requests_sent

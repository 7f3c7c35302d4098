"""The request budget: it adapts down on 429 and back up after a quiet period, a 429's Retry-After is
honoured by the request that met it only, and low-priority requests (pass 2) yield to normal ones."""

from __future__ import annotations

import threading
import time

from lib.gateway import bucket as gw
from lib.gateway.bucket import ADAPT_FLOOR, TokenBucket


def test_a_429_cuts_the_budget_never_below_the_floor() -> None:
    bucket = TokenBucket(50)
    bucket.throttled()
    assert bucket.rate < 50
    for _ in range(40):
        bucket._last_cut = -1e9  # as if a second had passed since each cut
        bucket.throttled()
    assert bucket.rate == 50 * ADAPT_FLOOR


def test_the_budget_climbs_back_after_a_quiet_period() -> None:
    bucket = TokenBucket(50)
    bucket.throttled()
    cut = bucket.rate
    now = time.monotonic()
    bucket._last_429 = now - gw.ADAPT_QUIET - 1.0  # one second past the quiet period
    bucket._last = now - 1.0
    bucket._refill(now)
    assert bucket.rate > cut


def test_low_priority_requests_wait_while_a_normal_one_waits() -> None:
    bucket = TokenBucket(2)  # one token every 500 ms
    order: list[str] = []
    bucket.acquire()  # the bucket is empty now

    low_started = threading.Event()

    def low() -> None:
        with gw.low_priority():
            low_started.set()
            bucket.acquire()
        order.append("low")

    def normal() -> None:
        bucket.acquire()
        order.append("normal")

    t_low = threading.Thread(target=low)
    t_low.start()
    assert low_started.wait(5)  # the low one waits first (no token comes for ~500 ms)
    t_normal = threading.Thread(target=normal)
    t_normal.start()
    t_low.join(5)
    t_normal.join(5)
    assert order == ["normal", "low"]

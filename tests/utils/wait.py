"""Waiting on a condition instead of a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], *, timeout: float = 10.0, interval: float = 0.05,
               what: str = "condition") -> None:
    """Call `condition` every `interval` seconds until it returns something truthy.

    Returns as soon as it does; raises AssertionError naming `what` if `timeout` seconds pass first
    (the condition is always tried at least once, and once more at the deadline)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(interval)

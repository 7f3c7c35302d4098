"""The sandbox's own control endpoints refuse keys they do not know (as its Stripe endpoints do), so a
mistyped call such as clock/advance {"days": 32} fails loudly instead of silently doing nothing."""

from __future__ import annotations

import json
import urllib.error
from typing import Any

import pytest

from tests.utils.sandbox import SandboxServer

UNKNOWN_BODY_KEYS = [
    ("clock/advance", {"days": 32}, "days"),
    ("clock/advance", {"seconds": 60, "dayz": 1}, "dayz"),
    ("clock/set", {"now": 1_700_000_000, "tz": "UTC"}, "tz"),
    ("reset", {"keep": True}, "keep"),
    ("requests", {"logbodies": True}, "logbodies"),
    ("faults", {"ratelimit": 0.5}, "ratelimit"),
    ("settings", {"retry_dayz": [1]}, "retry_dayz"),
]
UNKNOWN_QUERY = [("GET", "clock?days=1", "days"), ("GET", "requests?sinse=0", "sinse"),
                 ("GET", "health?x=1", "x"), ("GET", "webhook_deliveries?limit=5", "limit"),
                 ("GET", "settings?final_action=unpaid", "final_action"), ("DELETE", "requests?all=1", "all")]


def refused(sandbox: SandboxServer, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict]:
    with pytest.raises(urllib.error.HTTPError) as err:
        sandbox.control(method, path, body)
    return err.value.code, json.loads(err.value.read())["error"]


@pytest.mark.parametrize(("path", "body", "key"), UNKNOWN_BODY_KEYS)
def test_an_unknown_body_key_is_a_400_naming_it(sandbox: SandboxServer, path: str, body: dict, key: str) -> None:
    status, error = refused(sandbox, "POST", path, body)
    assert status == 400
    assert f"for /_sandbox/{path.split('?')[0]}: {key} " in error["message"]


@pytest.mark.parametrize(("method", "path", "key"), UNKNOWN_QUERY)
def test_an_unknown_query_parameter_is_a_400_naming_it(sandbox: SandboxServer, method: str, path: str,
                                                       key: str) -> None:
    status, error = refused(sandbox, method, path)
    assert status == 400
    assert f"unknown query parameter(s) for /_sandbox/{path.split('?')[0]}: {key} " in error["message"]


def test_a_refused_advance_leaves_the_clock_where_it_was(sandbox: SandboxServer) -> None:
    before = sandbox.now()
    refused(sandbox, "POST", "clock/advance", {"days": 32})
    assert sandbox.now() - before < 60


def test_known_keys_still_work(sandbox: SandboxServer) -> None:
    before = sandbox.now()
    assert sandbox.advance(days=2) - before >= 2 * 86400
    assert "last_seq" in sandbox.control("GET", "requests?since=0")
    sandbox.faults(max_rps=1000)
    sandbox.faults()

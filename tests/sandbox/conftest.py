"""Every sandbox test shape-checks every answer it received against the SDK's resource classes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stripe._error_object import ErrorObject

from tests.sandbox.shape import check
from tests.utils.sandbox import SandboxServer

ERROR_KEYS = set(ErrorObject.__annotations__) | {"type", "code", "param", "message", "doc_url", "decline_code",
                                                 "payment_intent", "payment_method", "charge"}


@pytest.fixture(autouse=True)
def _shape_check(request: pytest.FixtureRequest) -> Iterator[None]:
    if "sandbox" not in request.fixturenames:
        yield
        return
    sandbox: SandboxServer = request.getfixturevalue("sandbox")
    sandbox.control("POST", "requests", {"log_bodies": True})
    yield
    problems: list[str] = []
    for entry in sandbox.requests():
        body = entry.get("response")
        if body is None:
            continue
        where = f"{entry['method']} {entry['path']}"
        if entry["status"] == 200:
            problems += [f"{where}: {p}" for p in check(body)]
        else:
            err = body.get("error")
            if not isinstance(err, dict) or not {"type", "message"} <= set(err):
                problems.append(f"{where}: error body lacks type/message: {body}")
            elif set(err) - ERROR_KEYS:
                problems.append(f"{where}: error has undeclared keys {sorted(set(err) - ERROR_KEYS)}")
    sandbox.control("POST", "requests", {"log_bodies": False})
    assert not problems, "answers differ from the SDK's shapes:\n" + "\n".join(problems[:30])

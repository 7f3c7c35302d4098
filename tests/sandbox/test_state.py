"""--state keeps everything across restarts, written atomically."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.sandbox.helpers import customer, price, subscribe
from tests.utils.sandbox import SandboxServer
from tests.utils.wait import wait_until


def test_state_survives_restart_and_hard_kill(tmp_path: Path) -> None:
    state = tmp_path / "state.bin"
    server = SandboxServer.start(state_file=state)
    try:
        c = server.client
        cus = customer(c)
        sub = subscribe(c, cus.id, price(c).id)
        server.advance(days=40)
    finally:
        server.stop()  # graceful: saved on shutdown
    assert state.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]

    server = SandboxServer.start(state_file=state)
    try:
        c = server.client
        assert c.v1.customers.retrieve(cus.id).email == "ann@example.com"
        assert len(c.v1.invoices.list(params={"subscription": sub.id}).data) == 2
        later = c.v1.customers.create(params={"email": "late@example.com"})
        wait_until(lambda: later.id.encode() in state.read_bytes(), timeout=30,
                   what="the autosave wrote the new customer")  # saved once the API is quiet for 0.5 s
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGKILL)  # a crash: no shutdown hook runs
        server.proc.wait(timeout=10)
    finally:
        server.stop()
    assert not [p for p in tmp_path.iterdir() if p.name != "state.bin"]  # no temp file left behind

    server = SandboxServer.start(state_file=state)
    try:
        assert server.client.v1.customers.retrieve(later.id).email == "late@example.com"
        renewals = server.client.v1.subscriptions.retrieve(sub.id)
        assert renewals.status == "active"
    finally:
        server.stop()

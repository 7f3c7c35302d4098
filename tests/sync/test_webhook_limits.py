"""The webhook route under hostile or broken deliveries, through the real server process: an oversized body is
refused without being held in memory, and a cache that cannot be written answers 503 so Stripe retries."""

from __future__ import annotations

import http.client
import json
import os
import select
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import TEST_KEY
from tests.sync.test_webhooks import SECRET, signed
from tests.utils.browser import dashboard

MB = 1024 * 1024
CHUNK = 64 * 1024


def server_env(database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "STRIPE_WEBHOOK_SECRET": SECRET, "STRIPE_API_KEY": TEST_KEY,
            "STRIPE_API_BASE": "http://127.0.0.1:9"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """One dashboard server for this module: its base URL and its process id (for its memory)."""
    db = tmp_path_factory.mktemp("limits") / "cache.db"
    with dashboard(server_env(f"sqlite:///{db}")) as url:
        yield url, server_pid(urlsplit(url).port)


def server_pid(port: int | None) -> int:
    """The pid of the `streamlit run server.py --server.port <port>` this test process started."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"server.py" in args and str(port).encode() in args:
            return int(entry.name)
    raise AssertionError(f"no dashboard process on port {port}")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def connect(url: str, timeout: float = 20) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def answer(conn: http.client.HTTPConnection) -> tuple[int, dict]:
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, json.loads(body) if body.startswith(b"{") else {"raw": body.decode(errors="replace")}


def healthy(url: str) -> bool:
    conn = connect(url, timeout=10)
    conn.request("GET", "/_stcore/health")
    return conn.getresponse().status == 200


def stream_chunked(conn: http.client.HTTPConnection, total: int) -> int:
    """POST `total` bytes as a chunked body, made lazily one 64 KB piece at a time; stops early when the
    server has answered (its socket turned readable) or cut the connection. Returns the bytes sent."""
    conn.putrequest("POST", "/webhooks/stripe")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Stripe-Signature", "t=1,v1=00")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    assert conn.sock is not None
    piece = b"%x\r\n" % CHUNK + b"x" * CHUNK + b"\r\n"
    sent = 0
    try:
        while sent < total:
            if select.select([conn.sock], [], [], 0)[0]:
                break  # the server answered already: stop sending, read it
            conn.sock.sendall(piece)
            sent += CHUNK
        else:
            conn.sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection after refusing the body: the expected end
    return sent


def test_a_declared_oversize_body_is_refused_before_it_is_sent(server: tuple[str, int]) -> None:
    url, _ = server
    conn = connect(url, timeout=10)
    conn.putrequest("POST", "/webhooks/stripe")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(1_500 * MB))
    conn.endheaders()  # no body follows: the answer must come from the header alone
    status, body = answer(conn)
    assert status == 413
    assert body["error"].startswith("payload too large")


def test_a_chunked_300_mb_body_is_cut_off_without_growing_the_server(server: tuple[str, int]) -> None:
    url, pid = server
    assert healthy(url)
    before = rss_bytes(pid)
    conn = connect(url)
    sent = stream_chunked(conn, 300 * MB)
    status, body = answer(conn)
    grown = rss_bytes(pid) - before
    assert status == 413, body
    assert grown < 64 * MB, f"the server grew by {grown / MB:.0f} MB"
    assert sent < 64 * MB, "the server stops reading soon after the limit"
    assert healthy(url)


def test_a_body_just_under_the_limit_is_read_and_judged_by_its_signature(server: tuple[str, int]) -> None:
    url, _ = server
    conn = connect(url)
    payload = b'{"id": "evt_x", "pad": "' + b"x" * 900_000 + b'"}'
    conn.request("POST", "/webhooks/stripe", body=payload,
                 headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"})
    assert answer(conn)[0] == 400  # read whole, then refused for its (bad) signature, not for its size


@pytest.mark.parametrize("length", ["abc", "-5", "12, 13", ""])
def test_a_bad_content_length_is_an_answer_not_a_crash(server: tuple[str, int], length: str) -> None:
    url, _ = server
    conn = connect(url, timeout=10)
    conn.putrequest("POST", "/webhooks/stripe")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", length)
    conn.endheaders()
    conn.send(b"{}")
    try:
        status = conn.getresponse().status
    except (ConnectionResetError, http.client.RemoteDisconnected):
        status = 400  # the HTTP parser dropped a malformed request: no answer, no crash
    assert 400 <= status < 500
    assert healthy(url)


def _event() -> bytes:
    now = int(time.time())
    customer = {"id": "cus_DownTest1", "object": "customer", "created": now, "email": "down@example.com",
                "metadata": {}, "livemode": False}
    return json.dumps({"id": "evt_DownTest1", "object": "event", "type": "customer.created", "created": now,
                       "api_version": "2026-10-28", "livemode": False,
                       "data": {"object": customer}}).encode()


def _down_databases(tmp: Path) -> dict[str, str]:
    (tmp / "not-a-file.db").mkdir()
    return {"sqlite": f"sqlite:///{tmp / 'not-a-file.db'}",
            "postgresql": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_cache_that_cannot_be_written_is_a_503_naming_the_cause(tmp_path: Path, kind: str) -> None:
    payload = _event()
    with dashboard(server_env(_down_databases(tmp_path)[kind])) as url:
        conn = connect(url, timeout=30)
        conn.request("POST", "/webhooks/stripe", body=payload,
                     headers={"Content-Type": "application/json", "Stripe-Signature": signed(payload)})
        status, body = answer(conn)
    assert status == 503
    assert body["error"].startswith("the cache database could not be written (OperationalError)")
    assert "Traceback" not in body["error"]

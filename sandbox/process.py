"""Drive the local Stripe sandbox process: start it, reset it, move its clock, inject faults, read its log.

Used by the tests (fixture `sandbox`) and the benchmarks (bench/), which talk to Stripe resources only
through the official SDK (`server.client`); these helpers cover the sandbox's own control endpoints under
/_sandbox/. Also the port and readiness helpers any local server needs (`free_port`, `wait_http_ok`).
Never imported by the sandbox server itself.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import stripe

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ok(url: str, *, timeout: float = 30.0, proc=None) -> None:
    """Poll `url` until it answers 200; fail early with the process's output if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}:\n{out[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass
class SandboxServer:
    url: str
    proc: subprocess.Popen | None = None
    key: str = KEY
    _client: stripe.StripeClient | None = field(default=None, repr=False)
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200), repr=False)

    @classmethod
    def start(cls, *, state_file: Path | None = None, port: int | None = None,
              env: dict[str, str] | None = None) -> SandboxServer:
        port = port or free_port()
        cmd = [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(port)]
        if state_file is not None:
            cmd += ["--state", str(state_file)]
        proc_env = {**os.environ, **env} if env else None
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=proc_env)
        server = cls(url=f"http://127.0.0.1:{port}", proc=proc)
        wait_http_ok(server.url + "/_sandbox/health", timeout=30, proc=proc)
        # Keep reading its output (the last lines stay in `output`), so a full pipe can never block it.
        threading.Thread(target=server._drain, daemon=True).start()
        return server

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.decode(errors="replace"))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            self._client = stripe.StripeClient(self.key, base_addresses={"api": self.url}, max_network_retries=0)
        return self._client

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + "/_sandbox/" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def reset(self) -> None:
        self.control("POST", "reset", {})

    def advance(self, *, days: float = 0, seconds: float = 0) -> int:
        """Move sandbox time forward, running renewals and payment retries; returns the new now."""
        return self.control("POST", "clock/advance", {"seconds": seconds + days * 86400})["now"]

    def now(self) -> int:
        return self.control("GET", "clock")["now"]

    def faults(self, **settings: Any) -> None:
        """E.g. faults(rate_limit=0.2, server_error=0.05, latency_ms=[5, 20], max_rps=25); faults() clears."""
        self.control("POST", "faults", settings)

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """The request log: method, path, params, idempotency_key, status, seq."""
        return self.control("GET", f"requests?since={since}")["data"]

    def clear_requests(self) -> None:
        self.control("DELETE", "requests")

    def settings(self, **values: Any) -> dict[str, Any]:
        """Dunning and delivery settings, e.g. settings(final_action="unpaid", retry_days=[3, 5, 7])."""
        return self.control("POST", "settings", values)

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Delivery attempts: event, type, endpoint, url, attempt, status, error, ok, time."""
        return self.control("GET", "webhook_deliveries")["data"]

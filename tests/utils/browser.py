"""Browser tests: the real dashboard server (`streamlit run server.py`) driven by Debian's chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page

from tests.utils.net import free_port, wait_http_ok

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
APP_IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def drain(proc: subprocess.Popen) -> deque[bytes]:
    """Keep reading a started server's piped output: a full pipe (~64 KB of log lines or tracebacks) would
    block it mid-test. Returns the last 200 lines, for a debugger."""
    tail: deque[bytes] = deque(maxlen=200)
    threading.Thread(target=tail.extend, args=(proc.stdout,), daemon=True).start()
    return tail


@contextmanager
def dashboard(env: dict[str, str], *, port: int | None = None) -> Iterator[str]:
    """Start the dashboard on a free port with `env` on top of os.environ; yield its base URL."""
    port = port or free_port()
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", "server.py", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    log: deque[bytes] = deque()
    try:
        wait_http_ok(url + "/_stcore/health", timeout=60, proc=proc)
        log = drain(proc)
        yield url
    finally:
        # pytest shows a test's captured output only when it fails: the dashboard's side of the story
        print(f"--- dashboard {url}, last lines ---", b"".join(list(log)[-60:]).decode(errors="replace"), sep="\n")
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def browser_page() -> Iterator:
    """A fresh Playwright page in Debian's chromium (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        try:
            yield page
        finally:
            context.close()
            browser.close()


def wait_idle(page: Page, timeout: float = 30_000) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_selector(APP_IDLE, timeout=timeout)


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

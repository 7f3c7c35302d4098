"""Remake the README's screenshots (docs/img/*.png) from the real pages, the way `make demo` shows them.

    .venv/bin/python scripts/screenshots.py [--customers 300] [--seed 7] [--out docs/img]

Starts a private Stripe sandbox on a free port, seeds it like the demo (`python -m sandbox.seed --messy`),
syncs it into a throw-away SQLite cache, serves the dashboard (no-login local demo) and photographs each
page in Debian's chromium at 1440×900. Everything it starts is stopped at the end; nothing in data/ is
touched. Takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.process import SandboxServer, free_port, wait_http_ok  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
APP_IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


@dataclass(frozen=True)
class Shot:
    """One screenshot: the page's path, what to scroll to the top (a table with that column header, or a
    heading with that text; None: the top of the page) and the file name."""

    file: str
    path: str
    table_header: str | None = None
    heading: str | None = None


def shots(customers: dict[str, str]) -> list[Shot]:
    return [
        Shot("failed-invoices.png", "failed-invoices"),
        Shot("failed-invoices-worklist.png", "failed-invoices", table_header="Follow-up"),
        Shot("recovery-chart.png", "failed-invoices", heading="Failed vs recovered, last 12 months"),
        Shot("customers.png", "customers", table_header="Flags"),
        Shot("customer-detail.png", f"customer?id={customers['many_subscriptions']}"),
        Shot("customer-hostile-name.png", f"customer?id={customers['markdown_kwd']}"),
        Shot("subscriptions.png", "subscriptions", table_header="Items"),
        Shot("sync.png", "sync"),
    ]


def run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:4])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


@contextmanager
def dashboard(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "server.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(url + "/_stcore/health", timeout=60, proc=proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def photograph(base: str, todo: list[Shot], out: Path, width: int, height: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            for shot in todo:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"{base}/{shot.path}")
                page.wait_for_selector(APP_IDLE, timeout=60_000)
                page.locator("h1").first.wait_for()
                target = None
                if shot.table_header:
                    target = page.locator("[data-testid='stDataFrame']").filter(has=page.locator(
                        "[role=columnheader]", has_text=re.compile(f"^{re.escape(shot.table_header)}$")))
                elif shot.heading:
                    target = page.get_by_role("heading", name=shot.heading)
                if target is not None:
                    target.wait_for(timeout=30_000)
                    target.evaluate("el => el.scrollIntoView({block: 'start'})")
                page.wait_for_selector(APP_IDLE)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / shot.file))
                print(f"wrote {out / shot.file}")
                page.close()
        finally:
            browser.close()


def messy_customers(server: SandboxServer) -> dict[str, str]:
    return {c.metadata["messy_case"]: c.id for c in server.client.v1.customers.list({"limit": 100}).auto_paging_iter()
            if "messy_case" in c.metadata}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    server = SandboxServer.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {"STRIPE_API_KEY": server.key, "STRIPE_API_BASE": server.url, "STRIPE_REQUESTS_PER_SECOND": "500",
                   "DATABASE_URL": f"sqlite:///{tmp}/screenshots.db"}
            run([sys.executable, "-m", "sandbox.seed", "--api-base", server.url, "--api-key", server.key,
                 "--customers", str(args.customers), "--seed", str(args.seed), "--reset", "--messy",
                 "--webhook-url", "none"], env)
            run([sys.executable, "-m", "lib", "sync", "--full"], env)
            with dashboard(env) as base:
                photograph(base, shots(messy_customers(server)), args.out, args.width, args.height)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

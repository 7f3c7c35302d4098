"""Hold N real Streamlit sessions against running dashboard replicas and measure what users would feel.

Starts its own stack: the Stripe sandbox, seeded with the demo account (`sandbox.seed`), one sync into a
cache (SQLite file or a PostgreSQL URL, in its own schema), then 1 or 2 `streamlit run server.py` replicas in
the no-login demo mode on 127.0.0.1. Each session speaks Streamlit's websocket protocol (`bench/stclient.py`,
no browser) and acts out one role's script with think time (exponential, mean `--think` seconds):

- support: search customers, open one, page its invoices;
- finance: filter failed invoices, select one, save a follow-up;
- staff: open a customer and its portal-link panel.

An interaction is one rerun: latency is request sent -> `script_finished` received. Sessions are spread
over the replicas round-robin (a sticky proxy does the same per browser). Reported: latency percentiles
(overall and per step), errors (exceptions shown, error alerts, failed runs, dropped sockets), the replicas'
CPU seconds and RSS from /proc (before the sessions, with them idle, at the end, sampled every 5 s), RSS
per idle session, and the machine's load average. The last line printed is one JSON object.

    .venv/bin/python bench/sessions.py --sessions 40 --duration 120
    .venv/bin/python bench/sessions.py --sessions 40 --replicas 2 --database postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stclient import ProtocolError, RunResult, StSession  # noqa: E402
from sandbox.process import SandboxServer, free_port, wait_http_ok  # noqa: E402

KEY = "sk_test_sandbox_bench_sessions_0000"
ROLES = ("support", "finance", "staff")
SEARCHES = ("jo", "mar", "gmail", "smith", "an", "li", "example", "da", "el", "ro")
PAGE_SIZE = 4096


# --- the stack -------------------------------------------------------------------------------------------

def _schema_url(url: str, schema: str) -> str:
    """A PostgreSQL URL whose connections use `schema` (created if missing)."""
    import sqlalchemy as sa

    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix):]
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    eng.dispose()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def prepare_cache(sandbox: SandboxServer, database: str, customers: int, tmp: Path) -> tuple[str, dict[str, str]]:
    """Seed the sandbox and sync it into the cache. Returns (database URL, environment for the processes)."""
    url = f"sqlite:///{tmp / 'cache.db'}" if database == "sqlite" else _schema_url(database, "bench_sessions")
    env = {**os.environ, "STRIPE_API_KEY": KEY, "STRIPE_API_BASE": sandbox.url, "DATABASE_URL": url,
           "STRIPE_REQUESTS_PER_SECOND": "500", "PYTHONUNBUFFERED": "1"}
    env.pop("BILLING_SECRETS_FILE", None)
    py = sys.executable
    subprocess.run([py, "-m", "sandbox.seed", "--api-base", sandbox.url, "--api-key", KEY, "--customers",
                    str(customers), "--seed", "7", "--reset"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([py, "-m", "lib", "sync", "--full", "--quiet"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return url, env


def start_replica(env: dict[str, str], stack: ExitStack) -> tuple[str, subprocess.Popen]:
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "server.py", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--logger.level", "error"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

    stack.callback(stop)
    url = f"http://127.0.0.1:{port}"
    wait_http_ok(url + "/_stcore/health", timeout=90, proc=proc)
    return url, proc


# --- /proc ----------------------------------------------------------------------------------------------

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# --- role scripts --------------------------------------------------------------------------------------

@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: list[str] = field(default_factory=list)
    interactions: int = 0
    t0: float = field(default_factory=time.monotonic)
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (finished at, seconds from t0; latency)

    def record(self, step: str, res: RunResult) -> None:
        self.interactions += 1
        self.latencies[step].append(res.seconds)
        self.timeline.append((time.monotonic() - self.t0, res.seconds))
        problems = [*res.exceptions, *(f"alert: {a}" for a in res.alerts)]
        if res.finished != "FINISHED_SUCCESSFULLY":
            problems.append(f"run ended {res.finished}")
        for p in problems:
            self.errors[step] += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(f"{step}: {p[:300]}")

    def failure(self, step: str, exc: BaseException) -> None:
        self.errors[step] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{step}: {type(exc).__name__}: {exc}"[:300])


def _first_ids(res: RunResult, key: str, column: str = "id") -> list[str]:
    table = res.table(key)
    if table is None or column not in table.column_names:
        return []
    return [str(v) for v in table.column(column).to_pylist() if v]


class _Done(Exception):
    """The run's duration is over."""


class Role:
    """One user: a role's script repeated until the deadline, with think time between interactions."""

    def __init__(self, role: str, url: str, stats: Stats, rng: random.Random, think: float,
                 churn: bool = False) -> None:
        self.role, self.url, self.stats, self.rng, self.think = role, url, stats, rng, think
        self.churn = churn  # a new session (tab closed, another opened) after each round of the script
        self.s: StSession | None = None
        self.deadline = 0.0

    async def step(self, name: str, **kw: Any) -> RunResult:
        await asyncio.sleep(self.rng.expovariate(1 / self.think))
        if time.monotonic() >= self.deadline:
            raise _Done
        assert self.s is not None
        res = await self.s.run(**kw)
        self.stats.record(f"{self.role}:{name}", res)
        return res

    async def support(self) -> None:
        res = await self.step("search", page="customers", set={})
        if "cust_search" in res.widgets:
            res = await self.step("search", set={"cust_search": self.rng.choice(SEARCHES)})
        ids = _first_ids(res, "cust_table")
        if not ids:
            return
        cid = self.rng.choice(ids[:10])
        res = await self.step("open_customer", page="customer", query=f"id={cid}")
        for _ in range(2):
            if "cd_inv_next" not in res.widgets or res.widgets["cd_inv_next"].disabled:
                break
            res = await self.step("page_invoices", click="cd_inv_next")

    async def finance(self) -> None:
        res = await self.step("failed_invoices", page="failed-invoices", set={})
        if "fi_status" in res.widgets:
            res = await self.step("filter", set={"fi_status": "open"})
        ids = _first_ids(res, "fi_table")
        if not ids:
            return
        if len(ids) < 2:
            return
        # never the worklist's first row: the visibility probe writes there (the editor's default invoice)
        row = self.rng.randrange(1, min(len(ids), 10))
        res = await self.step("select", set={"fi_table": {"selection": {"rows": [row], "columns": [],
                                                                          "cells": []}}})
        if "fi_fu_note" not in res.widgets:  # selecting the row opened it in the follow-up editor
            return
        note = f"bench note {self.rng.randrange(10**6)}"
        await self.step("save_followup", set={"fi_fu_note": note, "fi_fu_status": "contacted"}, click="fi_fu_save")

    async def staff(self) -> None:
        res = await self.step("customers", page="customers", set={})
        ids = _first_ids(res, "cust_table")
        if not ids:
            return
        cid = self.rng.choice(ids[:10])
        res = await self.step("open_customer", page="customer", query=f"id={cid}")
        if "cd_portal_portal_toggle" in res.widgets:
            await self.step("portal_panel", click="cd_portal_portal_toggle")

    async def loop(self, deadline: float) -> None:
        script = getattr(self, self.role)
        self.deadline = deadline
        while time.monotonic() < deadline:
            try:
                if self.s is None:
                    self.s = await StSession.open(self.url)
                await script()
                if self.churn:
                    await self._reset()
            except _Done:
                return
            except (ProtocolError, OSError, KeyError) as exc:
                self.stats.failure(f"{self.role}:session", exc)
                await self._reset()
            except Exception as exc:  # a websocket error is an error to count, not a crash
                self.stats.failure(f"{self.role}:session", exc)
                await self._reset()

    async def _reset(self) -> None:
        if self.s is not None:
            try:
                await self.s.close()
            except Exception:
                pass
        self.s = None

    async def close(self) -> None:
        await self._reset()


def _note_of(res: RunResult, invoice_id: str) -> str | None:
    table = res.table("fi_table")
    if table is None:
        return None
    rows = table.select(["id", "followup_note"]).to_pylist()
    return next((r["followup_note"] or "" for r in rows if r["id"] == invoice_id), None)


async def visibility_probe(url_a: str, url_b: str, deadline: float, every: float,
                           out: list[dict[str, float] | None]) -> None:
    """Under the load: save a follow-up through replica A, rerun the same page on replica B until it shows
    the note (as a user pressing R would; no fixed sleeps). Two figures per probe, in seconds from A's save
    confirmed: `fresh`, when the first B run that showed it started (how stale B's data was: the cache
    stamp's part), and `shown`, when that run finished (plus one page run under this load). None when B had
    not shown it after 60 s (or another user overwrote the note first)."""
    while time.monotonic() + every < deadline:
        await asyncio.sleep(every)
        a = await StSession.open(url_a)
        b = await StSession.open(url_b)
        try:
            res = await a.run(page="failed-invoices")
            ids = _first_ids(res, "fi_table")
            if not ids or "fi_fu_note" not in res.widgets:
                continue
            invoice_id = ids[0]  # the editor's default invoice: the worklist's first row
            await b.run(page="failed-invoices")
            note = f"visibility probe {time.time():.3f}"
            await a.run(set={"fi_fu_note": note, "fi_fu_status": "contacted"}, click="fi_fu_save")
            t0 = time.monotonic()
            seen = None
            while time.monotonic() - t0 < 60:
                started = time.monotonic() - t0
                if _note_of(await b.run(), invoice_id) == note:
                    seen = {"fresh": round(started, 3), "shown": round(time.monotonic() - t0, 3)}
                    break
            out.append(seen)
        finally:
            await a.close()
            await b.close()


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))], 4)


def summary(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95), "p99": pct(values, 99),
            "max": round(max(values), 4) if values else None,
            "mean": round(statistics.fmean(values), 4) if values else None}


# --- the run -------------------------------------------------------------------------------------------

async def idle_sessions(urls: list[str], n: int) -> list[StSession]:
    """Open n sessions (one first page each) and leave them idle."""
    out = []
    for i in range(n):
        s = await StSession.open(urls[i % len(urls)])
        await s.run(page="overview")
        out.append(s)
    return out


async def sample_loop(pids: list[int], samples: list[dict[str, Any]], t0: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append({"t": round(time.monotonic() - t0, 1),
                        "rss_mb": [round(proc_rss_mb(p), 1) for p in pids],
                        "cpu_s": [round(proc_cpu_seconds(p), 2) for p in pids], "load": loadavg()[0]})
        try:
            await asyncio.wait_for(stop.wait(), 5)
        except TimeoutError:
            pass


async def drive(urls: list[str], pids: list[int], args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    # warm every replica (imports, first page runs) before measuring anything
    warm = await idle_sessions(urls, len(urls) * 2)
    for s in warm:
        await s.close()
    await asyncio.sleep(2)
    rss_before = [proc_rss_mb(p) for p in pids]
    idle = await idle_sessions(urls, args.idle_sessions)
    await asyncio.sleep(3)
    rss_idle = [proc_rss_mb(p) for p in pids]
    for s in idle:
        await s.close()
    await asyncio.sleep(2)
    per_idle = (sum(rss_idle) - sum(rss_before)) / args.idle_sessions if args.idle_sessions else None

    stats = Stats()
    stats.t0 = time.monotonic()
    users = [Role(ROLES[i % len(ROLES)], urls[i % len(urls)], stats, random.Random(rng.random()), args.think,
                  churn=args.churn) for i in range(args.sessions)]
    cpu0 = [proc_cpu_seconds(p) for p in pids]
    driver_cpu0 = time.process_time()
    load0 = loadavg()
    samples: list[dict[str, Any]] = []
    stop = asyncio.Event()
    t0 = time.monotonic()
    sampler = asyncio.create_task(sample_loop(pids, samples, t0, stop))
    deadline = t0 + args.duration
    visibility: list[dict[str, float] | None] = []
    probes = [visibility_probe(urls[0], urls[1], deadline, 15, visibility)] if len(urls) == 2 else []
    await asyncio.gather(*(u.loop(deadline) for u in users), *probes)
    wall = time.monotonic() - t0
    stop.set()
    await sampler
    for u in users:
        await u.close()
    cpu = [proc_cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
    driver_cpu = time.process_time() - driver_cpu0
    every = [x for v in stats.latencies.values() for x in v]
    return {
        "sessions": args.sessions, "churn": args.churn, "duration_s": round(wall, 1),
        "replicas": len(urls), "think_s": args.think,
        "interactions": stats.interactions, "interactions_per_s": round(stats.interactions / wall, 2),
        "latency_s": summary(every),
        "latency_by_step_s": {k: summary(v) for k, v in sorted(stats.latencies.items())},
        # p95 per 20-second window of the run (by when the interaction finished): a start-up burst vs steady state
        "p95_by_20s_window": [pct([lat for t, lat in stats.timeline if w <= t < w + 20], 95)
                              for w in range(0, int(wall) + 1, 20)],
        "latency_after_first_30s_s": summary([lat for t, lat in stats.timeline if t >= 30]),
        "cross_replica_visibility_s": visibility if len(urls) == 2 else None,
        "errors": sum(stats.errors.values()), "errors_by_step": dict(stats.errors),
        "error_samples": stats.error_samples,
        "server_cpu_s": [round(c, 1) for c in cpu],
        "server_cpu_cores_busy": round(sum(cpu) / wall, 2),
        "server_cpu_ms_per_interaction": round(1000 * sum(cpu) / max(stats.interactions, 1), 1),
        "driver_cpu_s": round(driver_cpu, 1),
        "rss_mb": {"before_sessions": [round(x, 1) for x in rss_before],
                   "idle_sessions": [round(x, 1) for x in rss_idle],
                   "end": [round(proc_rss_mb(p), 1) for p in pids],
                   "min_during": [round(min(s["rss_mb"][i] for s in samples), 1) for i in range(len(pids))],
                   "max_during": [round(max(s["rss_mb"][i] for s in samples), 1) for i in range(len(pids))]},
        "idle_sessions": args.idle_sessions,
        "rss_per_idle_session_mb": round(per_idle, 2) if per_idle is not None else None,
        "rss_samples": samples if args.samples else None,
        "loadavg_start": load0, "loadavg_end": loadavg(), "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--duration", type=float, default=120, help="seconds of load")
    ap.add_argument("--replicas", type=int, choices=(1, 2), default=1)
    ap.add_argument("--database", default="sqlite", help="'sqlite' or a PostgreSQL URL")
    ap.add_argument("--customers", type=int, default=2000, help="demo account size to seed (default 2000)")
    ap.add_argument("--think", type=float, default=3.0, help="mean think time between interactions (s)")
    ap.add_argument("--idle-sessions", type=int, default=40, help="sessions opened to measure RSS per idle session")
    ap.add_argument("--samples", action="store_true", help="include the 5-second RSS/CPU samples")
    ap.add_argument("--churn", action="store_true",
                    help="each user closes its session and opens a new one after every round (a soak)")
    ap.add_argument("--url", action="append", help="drive these running replicas instead of starting a stack")
    ap.add_argument("--pid", action="append", type=int, help="their process ids (for CPU and RSS)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    info: dict[str, Any] = {"database": "sqlite" if args.database == "sqlite" else "postgresql",
                            "customers": args.customers}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        if args.url:
            urls, pids = args.url, args.pid or []
        else:
            t = time.monotonic()
            sandbox = SandboxServer.start()
            stack.callback(sandbox.stop)
            _url, env = prepare_cache(sandbox, args.database, args.customers, Path(tmp))
            info["setup_s"] = round(time.monotonic() - t, 1)
            started = [start_replica(env, stack) for _ in range(args.replicas)]
            urls, pids = [u for u, _ in started], [p.pid for _, p in started]
        info |= asyncio.run(drive(urls, pids, args))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
